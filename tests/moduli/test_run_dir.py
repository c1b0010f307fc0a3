"""Tests of moduli.atomic (crash-safe writes) and moduli.run_dir (run directories, resume)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from moduli import atomic
from moduli.atomic import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
)
from moduli.config import config_from_dict, config_hash, load_config
from moduli.errors import CheckpointError, ConfigError, RunDirError, StorageError
from moduli.run_dir import RunDir


def make_cfg(out_dir: Path, **train) -> object:
    return config_from_dict(
        {"task": "adding", "out_dir": str(out_dir), "model": {"hidden_size": 8},
         "train": {"epochs": 3, "steps_per_epoch": 4, "device": "cpu", **train}}
    )


# -- atomic writes ----------------------------------------------------------------------------


def test_atomic_write_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["f.txt"]
    atomic_write_json(tmp_path / "x.json", {"a": [1, 2], "b": torch.tensor(3.5), "p": Path("q")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2], "b": 3.5, "p": "q"}


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old content")

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match=r"f\.txt: no space left on the device; free disk space"):
        atomic_write_text(target, "new content that never lands")
    monkeypatch.undo()
    assert target.read_text() == "old content"
    assert os.listdir(tmp_path) == ["f.txt"]  # the temporary file was removed


def test_failed_torch_save_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / "c.pt"
    atomic_torch_save({"w": torch.ones(2)}, target)
    with pytest.raises(Exception):
        atomic_torch_save({"bad": lambda: None}, target)  # a lambda cannot be pickled
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["c.pt"]


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_read_only_location_gives_a_storage_error_with_the_fix(tmp_path, monkeypatch, code):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(StorageError, match=r"cannot write .*f\.txt.*choose a writable directory") as info:
        atomic_write_text(tmp_path / "f.txt", "x")
    assert isinstance(info.value, OSError)


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", broken)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "f.txt", "x")
    assert not isinstance(info.value, StorageError)


def test_jsonl_ignores_a_truncated_last_line_and_repairs_it_on_append(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1, "loss": 0.5})
    append_jsonl(path, {"step": 2, "loss": float("nan")})
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "lo')  # a crash in the middle of a write
    records = read_jsonl(path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[1]["loss"] != records[1]["loss"]  # NaN survives
    append_jsonl(path, {"step": 3, "loss": 0.25})
    assert [r["step"] for r in read_jsonl(path)] == [1, 2, 3]
    assert path.read_text().count("\n") == 3


def test_jsonl_corrupt_middle_line_is_reported(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(StorageError, match="line 2 is not valid JSON"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


# -- run directories --------------------------------------------------------------------------


def test_create_writes_the_layout(tmp_path):
    cfg = make_cfg(tmp_path / "runs")
    run = RunDir.create(cfg)
    assert run.path == tmp_path / "runs" / f"adding-{config_hash(cfg)}"
    assert load_config([run.config_path]) == cfg
    env = json.loads(run.environment_path.read_text())
    for key in ("python", "torch", "geoopt", "numpy", "platform", "device", "device_name", "cuda",
                "git_revision", "command_line", "start_time"):
        assert key in env
    assert env["device"] == "cpu" and env["torch"] == torch.__version__
    assert run.status == "running" and not run.is_finished and run.summary() is None
    assert run.load_checkpoint() is None


def test_create_validates_before_writing(tmp_path):
    cfg = make_cfg(tmp_path / "runs")
    cfg.pruning.target = 1.5
    with pytest.raises(ConfigError, match="pruning.target"):
        RunDir.create(cfg)
    assert not (tmp_path / "runs").exists()


def test_reopen_same_config_and_cosmetic_changes_share_the_directory(tmp_path):
    cfg = make_cfg(tmp_path / "runs")
    first = RunDir.create(cfg)
    again = RunDir.create(make_cfg(tmp_path / "runs", log_every=5))
    assert again.path == first.path
    assert load_config([again.config_path]).train.log_every == 5
    assert RunDir.open(first.path).config == again.config


def test_hand_edited_config_is_refused(tmp_path):
    cfg = make_cfg(tmp_path / "runs")
    run = RunDir.create(cfg)
    run.config_path.write_text(run.config_path.read_text().replace("seed: 0", "seed: 99"))
    with pytest.raises(RunDirError, match="holds a different config"):
        RunDir.create(cfg)
    with pytest.raises(RunDirError, match="does not match its directory name"):
        RunDir.open(run.path)


def test_open_errors(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        RunDir.open(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path / "empty")


def test_metrics_round_trip_and_need_a_step(tmp_path):
    run = RunDir.create(make_cfg(tmp_path))
    run.log_metrics({"step": 1, "loss": 2.0})
    run.log_metrics({"step": 2, "loss": 1.5, "accuracy": torch.tensor(0.25)})
    frame = run.metrics()
    assert list(frame["step"]) == [1, 2] and list(frame["loss"]) == [2.0, 1.5]
    assert frame["accuracy"].iloc[1] == 0.25
    with pytest.raises(ValueError, match="step"):
        run.log_metrics({"loss": 1.0})
    assert run.truncate_metrics(1) == 1
    assert [r["step"] for r in run.read_metrics()] == [1]


def test_checkpoint_round_trip_and_refusals(tmp_path):
    run = RunDir.create(make_cfg(tmp_path))
    state = {"step": 8, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "rng": torch.get_rng_state(), "lr": 0.1}
    run.save_checkpoint(state)
    loaded = run.load_checkpoint()
    assert loaded["step"] == 8 and loaded["lr"] == 0.1
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert torch.equal(loaded["rng"], state["rng"])
    with pytest.raises(ValueError, match="step"):
        run.save_checkpoint({"model": {}})

    other = RunDir.create(make_cfg(tmp_path, seed=1))
    other.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    other.checkpoint_path.write_bytes(run.checkpoint_path.read_bytes())
    with pytest.raises(CheckpointError, match=r"belongs to config .*delete it to restart"):
        other.load_checkpoint()

    data = run.checkpoint_path.read_bytes()
    run.checkpoint_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"last\.pt is corrupt or truncated .*delete it to restart"):
        run.load_checkpoint()


def _train(run: RunDir, crash_after: int | None = None) -> int:
    """A deterministic stand-in for training: resumes from the run directory's checkpoint."""
    cfg = run.config
    state = run.resume()
    step, x = (state["step"], state["x"]) if state else (0, cfg.train.seed + 1)
    total = cfg.train.epochs * cfg.train.steps_per_epoch
    while step < total:
        step += 1
        x = (x * 1103515245 + 12345) % 2**31
        run.log_metrics({"step": step, "x": x})
        if crash_after is not None and step == crash_after:
            raise RuntimeError("simulated crash")
        if step % cfg.train.steps_per_epoch == 0:
            run.log_metrics({"step": step, "epoch": step // cfg.train.steps_per_epoch, "x": x})
            run.save_checkpoint({"step": step, "x": x})
    run.write_summary({"x": x, "steps": step})
    return x


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    reference = RunDir.create(make_cfg(tmp_path / "a"))
    expected = _train(reference)

    run = RunDir.create(make_cfg(tmp_path / "b"))
    with pytest.raises(RuntimeError):
        _train(run, crash_after=6)  # checkpoint at step 4, steps 5 and 6 logged after it
    run.mark_failed(RuntimeError("simulated crash"))
    assert run.status == "failed"
    assert max(r["step"] for r in run.read_metrics()) == 6
    run = RunDir.create(make_cfg(tmp_path / "b"))
    assert run.status == "running"
    assert _train(run) == expected
    assert run.read_metrics() == reference.read_metrics()
    assert run.metrics().equals(reference.metrics())
    assert run.is_finished and run.status == "finished" and run.summary() == {"x": expected, "steps": 12}


def test_resume_without_checkpoint_clears_stale_metrics(tmp_path):
    run = RunDir.create(make_cfg(tmp_path))
    with pytest.raises(RuntimeError):
        _train(run, crash_after=2)
    assert run.resume() is None
    assert run.read_metrics() == []


def test_finished_run_is_not_touched_on_create(tmp_path):
    run = RunDir.create(make_cfg(tmp_path))
    _train(run)
    env_before = run.environment_path.read_text()
    again = RunDir.create(make_cfg(tmp_path))
    assert again.is_finished and again.status == "finished"
    assert again.environment_path.read_text() == env_before


def test_atomic_writes_make_ordinary_files_with_the_umask_permissions(tmp_path):
    """Results are shared files: not the 0600 mode of a private temporary file."""
    import os
    import stat

    from moduli.atomic import _UMASK, atomic_write_text

    path = atomic_write_text(tmp_path / "table.md", "x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_UMASK
