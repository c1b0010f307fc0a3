"""train.tensorboard: TensorBoard scalars equal the records of metrics.jsonl, in every training path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from moduli import tensorboard_mirror
from moduli.cli import main
from moduli.config import config_hash, load_config
from moduli.errors import ConfigError
from moduli.run_dir import RunDir
from moduli.tensorboard_mirror import scalars_of

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny.yaml")


def tiny(out: Path, task: str = "adding", *overrides: str):
    return load_config([str(ROOT / "configs" / f"{task}.yaml"), TINY], [f"out_dir={out}", *overrides])


def read_events(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard itself reads the event files (purged events hidden)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected_scalars(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] computed independently from metrics.jsonl."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for key, value in record.items():
            if key in ("step", "split") or isinstance(value, (bool, str)):
                continue
            expected.setdefault(f"{record['split']}/{key}", []).append((record["step"], float(value)))
    return expected


def assert_same(events: dict, expected: dict) -> None:
    assert sorted(events) == sorted(expected)
    for tag, points in expected.items():
        assert [s for s, _ in events[tag]] == [s for s, _ in points], tag
        for (_, got), (_, want) in zip(events[tag], points):
            assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-30), (tag, got, want)  # stored as float32


def test_scalars_of_one_record():
    record = {"step": 7, "epoch": 1, "split": "valid", "loss": 0.5, "error_cm": 12.25, "flag": True, "note": "x"}
    assert scalars_of(record) == {"valid/epoch": 1.0, "valid/loss": 0.5, "valid/error_cm": 12.25}
    assert scalars_of({"step": 1, "loss": 2}) == {"loss": 2.0}


@pytest.mark.parametrize("task", ["adding", "navigation"])
def test_hash_is_the_same_with_and_without_tensorboard(tmp_path, task):
    on = load_config([str(ROOT / "configs" / f"{task}.yaml"), TINY], ["train.tensorboard=true"], check_hardware=False)
    off = load_config([str(ROOT / "configs" / f"{task}.yaml"), TINY], [])
    assert on.train.tensorboard and not off.train.tensorboard
    assert config_hash(on) == config_hash(off)
    assert RunDir.path_for(on) == RunDir.path_for(off)


def test_missing_package_is_a_config_error_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tensorboard_mirror, "tensorboard_available", lambda: False)
    with pytest.raises(ConfigError, match=r'train.tensorboard = true needs the tensorboard package.*pip install -e "\.\[tensorboard\]"'):
        tiny(tmp_path, "adding", "train.tensorboard=true")
    assert tiny(tmp_path, "adding").train.tensorboard is False  # the default needs nothing
    code = main(["train", str(ROOT / "configs" / "adding.yaml"), TINY, "train.tensorboard=true", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install -e ".[tensorboard]"' in err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_wrong_type_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train.tensorboard = 'often' has the wrong type; allowed: true or false"):
        tiny(tmp_path, "adding", "train.tensorboard=often")


@pytest.mark.parametrize("task", ["adding", "navigation", "language"])
def test_trained_run_logs_exactly_its_metrics(tmp_path, task, one_thread):
    pytest.importorskip("tensorboard")  # the event files are read with tensorboard itself
    from moduli.training import run_config

    cfg = tiny(tmp_path, task, "train.tensorboard=true", "pruning.target=0.5")
    run_config(cfg, quiet=True)
    run = RunDir.open(RunDir.path_for(cfg))
    records = run.read_metrics()
    assert {r["split"] for r in records} == {"train", "valid"}
    events = read_events(run.tensorboard_path)
    assert_same(events, expected_scalars(records))
    assert run._tensorboard is None  # closed with the summary


def test_batched_seeds_log_exactly_their_metrics(tmp_path, one_thread):
    pytest.importorskip("tensorboard")  # the event files are read with tensorboard itself
    from moduli.training.batched import train_batched

    cfgs = [tiny(tmp_path, "adding", "train.tensorboard=true", f"train.seed={seed}") for seed in (0, 1)]
    outcomes = train_batched(cfgs, quiet=True)
    assert all(outcome["batched_runs"] == 2 for outcome in outcomes)
    for cfg in cfgs:
        run = RunDir.open(RunDir.path_for(cfg))
        assert_same(read_events(run.tensorboard_path), expected_scalars(run.read_metrics()))


def test_resume_hides_the_events_that_metrics_jsonl_drops(tmp_path):
    pytest.importorskip("tensorboard")  # the event files are read with tensorboard itself
    cfg = tiny(tmp_path, "adding", "train.tensorboard=true")
    first = RunDir.create(cfg)
    first.save_checkpoint({"step": 2})
    for step in (1, 2, 3, 4):  # steps 3 and 4 come after the checkpoint: an interrupted attempt
        first.log_metrics({"step": step, "split": "train", "loss": float(step)})
    first.close_tensorboard()

    again = RunDir.create(cfg)
    assert again.resume() == {"step": 2}
    for step in (3, 4):
        again.log_metrics({"step": step, "split": "train", "loss": 10.0 * step})
    again.close_tensorboard()
    expected = {"train/loss": [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]}
    assert expected_scalars(again.read_metrics()) == expected
    assert_same(read_events(again.tensorboard_path), expected)
