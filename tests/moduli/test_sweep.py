"""Tests of moduli.sweep: grid expansion, up-front validation, reuse, resume, parallel, SLURM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from moduli.config import RunConfig
from moduli.errors import ConfigError, DependencyError
from moduli.run_dir import RunDir
from moduli.sweep import expand_grid, format_override_value, parse_grid_arg, parse_seeds, run_sweep

BASE = """task: adding
model: {hidden_size: 8}
train: {epochs: 2, steps_per_epoch: 3, device: cpu}
"""


def lcg_final(seed: int, steps: int) -> int:
    """What toy_train computes, written independently."""
    x = seed + 1
    for _ in range(steps):
        x = (1103515245 * x + 12345) % (1 << 31)
    return x


def toy_train(cfg: RunConfig, quiet: bool) -> dict:
    """A deterministic train function that uses RunDir for metrics, checkpoints and summary.

    It records every call in <out_dir>/calls.txt and crashes once after step N when a file
    <out_dir>/crash_after_N exists (the file is removed when it fires).
    """
    out = Path(cfg.out_dir)
    with open(out / "calls.txt", "a") as f:
        f.write(f"{cfg.train.seed} {cfg.regularizer.strength}\n")
    crash_files = sorted(out.glob("crash_after_*"))
    crash_after = int(crash_files[0].name.rsplit("_", 1)[1]) if crash_files else None
    run = RunDir.create(cfg, check_hardware=False)
    state = run.resume()
    step, x = (state["step"], state["x"]) if state else (0, cfg.train.seed + 1)
    per_epoch = cfg.train.steps_per_epoch
    while step < cfg.train.epochs * per_epoch:
        step += 1
        x = (x * 1103515245 + 12345) % 2**31
        run.log_metrics({"step": step, "x": x})
        if step == crash_after:
            crash_files[0].unlink()
            raise RuntimeError("simulated crash")
        if step % per_epoch == 0:
            run.save_checkpoint({"step": step, "x": x})
    summary = {"final_x": x, "strength": cfg.regularizer.strength}
    run.write_summary(summary)
    return summary


def failing_train(cfg: RunConfig, quiet: bool) -> dict:
    if cfg.train.seed == 1:
        raise ValueError("seed 1 diverged")
    return toy_train(cfg, quiet)


@pytest.fixture()
def setup(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    out = tmp_path / "runs"
    out.mkdir()
    return base, out


def calls(out: Path) -> list[str]:
    path = out / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


# -- grid expansion ---------------------------------------------------------------------------


def test_expand_grid_known_cells():
    cells = expand_grid(["out_dir=x"], {"pruning.target": [0.9, 0.98], "regularizer.kind": ["none", "l1"]}, [0, 1])
    assert len(cells) == 2 * 2 * 2
    assert cells[0] == ["out_dir=x", "pruning.target=0.9", "regularizer.kind=none", "train.seed=0"]
    assert cells[1] == ["out_dir=x", "pruning.target=0.9", "regularizer.kind=none", "train.seed=1"]
    assert cells[2] == ["out_dir=x", "pruning.target=0.9", "regularizer.kind=l1", "train.seed=0"]
    assert cells[-1] == ["out_dir=x", "pruning.target=0.98", "regularizer.kind=l1", "train.seed=1"]
    assert len({tuple(c) for c in cells}) == len(cells)
    assert expand_grid([], {}, [3]) == [["train.seed=3"]]


def test_expand_grid_errors():
    with pytest.raises(ConfigError, match="non-empty list"):
        expand_grid([], {"a.b": []}, [0])
    with pytest.raises(ConfigError, match="seeds"):
        expand_grid([], {}, [])
    with pytest.raises(ConfigError, match="conflicts with the seeds"):
        expand_grid([], {"train.seed": [1]}, [0])
    with pytest.raises(TypeError):
        expand_grid("a=1", {}, [0])


def test_value_formatting_and_argument_parsing():
    assert [format_override_value(v) for v in (None, True, 0.5, 3, "x", ["a", "b"])] == [
        "null", "true", "0.5", "3", "x", '["a", "b"]']
    assert parse_grid_arg("pruning.target=0.9,0.98") == ("pruning.target", ["0.9", "0.98"])
    assert parse_seeds("0,2,5-7") == [0, 2, 5, 6, 7]
    for bad in ("pruning.target", "=1,2", "a=", "a=1,,2"):
        with pytest.raises(ConfigError, match="key=v1,v2"):
            parse_grid_arg(bad)
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds("0,x")


# -- running ----------------------------------------------------------------------------------


def test_sweep_runs_cells_and_never_recomputes_finished_runs(setup):
    base, out = setup
    grid = {"regularizer.strength": [0.001, 0.01]}
    table = run_sweep([base], grid, [0, 1], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert len(table) == 4 and (table["status"] == "finished").all()
    for _, row in table.iterrows():
        assert row["final_x"] == lcg_final(int(row["train.seed"]), 6)
        assert row["strength"] == float(row["regularizer.strength"])
        assert RunDir.open(row["run_dir"]).is_finished
    assert len(calls(out)) == 4
    assert table["config_hash"].nunique() == 4

    again = run_sweep([base], grid, [0, 1], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert len(calls(out)) == 4  # nothing was recomputed
    assert again.equals(table)


def test_sweep_resumes_a_half_finished_run(setup, tmp_path):
    base, out = setup
    (out / "crash_after_5").touch()  # checkpoint at step 3; steps 4 and 5 are logged after it
    table = run_sweep([base], {}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert list(table["status"]) == ["failed"] and "simulated crash" in table["error"][0]
    run = RunDir.open(table["run_dir"][0])
    assert run.status == "failed" and not run.is_finished

    table = run_sweep([base], {}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert list(table["status"]) == ["finished"] and table["final_x"][0] == lcg_final(0, 6)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    reference = run_sweep([base], {}, [0], train_fn=toy_train, base_overrides=[f"out_dir={fresh}"])
    assert RunDir.open(table["run_dir"][0]).read_metrics() == RunDir.open(reference["run_dir"][0]).read_metrics()


def test_failed_cells_do_not_stop_the_others(setup):
    base, out = setup
    table = run_sweep([base], {}, [0, 1, 2], train_fn=failing_train, base_overrides=[f"out_dir={out}"])
    assert list(table["status"]) == ["finished", "failed", "finished"]
    assert table["error"][1] == "ValueError: seed 1 diverged"
    assert table["error"].isna().tolist() == [True, False, True]


def test_every_cell_is_validated_before_any_run(setup):
    base, out = setup
    with pytest.raises(ConfigError, match=r"pruning\.target = 1\.5 is out of range.*sweep cell"):
        run_sweep([base], {"pruning.target": [0.5, 1.5]}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert list(out.iterdir()) == []
    with pytest.raises(ConfigError, match="jobs"):
        run_sweep([base], {}, [0], jobs=0, train_fn=toy_train)
    with pytest.raises(ConfigError, match="executor"):
        run_sweep([base], {}, [0], executor="cloud", train_fn=toy_train)


def test_duplicate_cells_run_once(setup):
    base, out = setup
    table = run_sweep([base], {"train.epochs": [2, "2"]}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert len(table) == 2 and table["config_hash"].nunique() == 1
    assert len(calls(out)) == 1


def test_parallel_processes_match_sequential_results(setup, tmp_path):
    base, out = setup
    seq_out = tmp_path / "seq"
    seq_out.mkdir()
    grid = {"regularizer.strength": [0.001, 0.01]}
    parallel = run_sweep([base], grid, [0], jobs=2, train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    sequential = run_sweep([base], grid, [0], jobs=1, train_fn=toy_train, base_overrides=[f"out_dir={seq_out}"])
    assert list(parallel["final_x"]) == list(sequential["final_x"])
    assert list(parallel["config_hash"]) == list(sequential["config_hash"])
    assert len(calls(out)) == 2
    with pytest.raises(TypeError, match="module-level"):
        run_sweep([base], grid, [0], jobs=2, train_fn=lambda cfg, quiet: {}, base_overrides=[f"out_dir={out}"])


def test_slurm_executor_through_submitit(setup):
    pytest.importorskip("submitit")
    base, out = setup
    table = run_sweep(
        [base], {}, [0, 1], executor="slurm", train_fn=toy_train, slurm_options={"cluster": "debug"},
        base_overrides=[f"out_dir={out}"],
    )
    assert (table["status"] == "finished").all()
    assert list(table["final_x"]) == [lcg_final(0, 6), lcg_final(1, 6)]


def test_slurm_without_submitit_is_a_clear_error(setup, monkeypatch):
    base, out = setup
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(DependencyError, match=r"pip install 'moduli\[cluster\]'"):
        run_sweep([base], {}, [0], executor="slurm", train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert not any(p.name != "slurm" for p in out.iterdir())


def test_summary_file_is_the_source_for_finished_runs(setup):
    base, out = setup
    table = run_sweep([base], {}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    summary_path = Path(table["run_dir"][0]) / "summary.json"
    summary_path.write_text(json.dumps({"final_x": -1, "strength": 0.0}))
    table = run_sweep([base], {}, [0], train_fn=toy_train, base_overrides=[f"out_dir={out}"])
    assert table["final_x"][0] == -1 and len(calls(out)) == 1
