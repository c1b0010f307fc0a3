"""The planner: every cell loaded and validated up front, grid cells equal to full loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from moduli.config import config_hash, load_config
from moduli.errors import ConfigError
from moduli.planner import expand_grid, plan_runs
from moduli.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "configs" / "adding.yaml", ROOT / "configs" / "tiny.yaml"]


def test_grid_cells_equal_and_hash_like_full_loads(tmp_path):
    grid = {"pruning.method": ["magnitude", "random", "none"], "pruning.target": [0.5, 0.95], "optim.lr": ["1e-3"]}
    cells = expand_grid([f"out_dir={tmp_path}"], grid, [0, 3])
    runs = plan_runs(FILES, cells)
    assert len(runs) == 12
    for cell, run in zip(cells, runs):
        full = load_config(FILES, cell)
        assert run.config == full and config_hash(run.config) == config_hash(full)
        assert run.overrides == tuple(cell) and run.run_dir == RunDir.path_for(full)
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_cells_that_differ_in_other_keys_are_loaded_in_full(tmp_path):
    cells = [[f"out_dir={tmp_path}", "train.seed=0"], [f"out_dir={tmp_path}", "regularizer=l1", "train.seed=0"]]
    first, second = plan_runs(FILES, cells)
    assert first.config.regularizer.kind == "moduli" and second.config.regularizer.kind == "l1"


def test_an_invalid_cell_is_named_before_anything_runs(tmp_path):
    cells = expand_grid([f"out_dir={tmp_path}"], {"pruning.target": [0.5, 1.5]}, [0])
    with pytest.raises(ConfigError, match=r"pruning.target = 1.5 is out of range.*\[cell 1\]"):
        plan_runs(FILES, cells, describe=lambda i: f"cell {i}")
    with pytest.raises(ConfigError, match=r"pruning.target = 1.5 is out of range; allowed: 0 <= target < 1$"):
        plan_runs(FILES, cells)


def test_finished_means_a_summary_and_only_run_dir_says_so(tmp_path):
    (run,) = plan_runs(FILES, [[f"out_dir={tmp_path}"]])
    assert run.summary is None and RunDir.finished_summary(run.config) is None
    directory = RunDir.create(run.config)
    RunDir.record_failure(run.config, RuntimeError("stopped"))
    assert directory.status == "failed" and run.summary is None
    directory.write_summary({"value": 1.0})
    assert run.summary == {"value": 1.0} and RunDir.finished_summary(run.config) == {"value": 1.0}
    RunDir.record_failure(run.config, RuntimeError("late"))  # a finished run stays finished
    assert directory.status == "finished"
