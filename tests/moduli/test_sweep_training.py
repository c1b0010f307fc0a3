"""A sweep of real tiny training runs, interrupted part-way and restarted: finished runs are reused,
the half-finished one resumes from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from moduli.run_dir import RunDir
from moduli.sweep import run_sweep
from moduli.training import Trainer

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [str(ROOT / "configs" / "adding.yaml"), str(ROOT / "configs" / "tiny.yaml")]
GRID = {"pruning.target": [0.5, 0.8]}
SEEDS = [0, 1]
EPOCHS, STEPS = 2, 5  # tiny.yaml: 5 steps per epoch, a checkpoint after every epoch


pytestmark = pytest.mark.usefixtures("one_thread")


class _Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_sweep_restarts_reusing_finished_runs_and_resuming_the_third(tmp_path, monkeypatch):
    base = [f"out_dir={tmp_path}", f"train.epochs={EPOCHS}"]
    original_save = RunDir.save_checkpoint
    saves = []

    def save_and_interrupt_third_run(self, state):
        original_save(self, state)
        saves.append(self.path)
        if len(saves) == 2 * EPOCHS + 1:  # the third run's first checkpoint
            raise _Interrupt

    with monkeypatch.context() as m:
        m.setattr(RunDir, "save_checkpoint", save_and_interrupt_third_run)
        with pytest.raises(_Interrupt):
            run_sweep(CONFIGS, GRID, SEEDS, train_fn=None, base_overrides=base)

    dirs = list(dict.fromkeys(saves))
    assert len(dirs) == 3
    finished, interrupted = dirs[:2], dirs[2]
    assert all((d / "summary.json").is_file() for d in finished)
    assert not (interrupted / "summary.json").exists()
    summary_mtimes = {d: (d / "summary.json").stat().st_mtime_ns for d in finished}

    started = []  # (run directory, first epoch) of every Trainer.run on restart
    original_run = Trainer.run

    def counting_run(self):
        result = original_run(self)
        started.append((self.run_dir.path, self.start_epoch))
        return result

    monkeypatch.setattr(Trainer, "run", counting_run)
    table = run_sweep(CONFIGS, GRID, SEEDS, train_fn=None, base_overrides=base)

    assert len(table) == 4 and (table["status"] == "finished").all()
    assert sorted(zip(table["pruning.target"], table["train.seed"])) == [
        ("0.5", "0"), ("0.5", "1"), ("0.8", "0"), ("0.8", "1"),
    ]
    assert table["run_dir"].nunique() == 4 and (table["steps"] == EPOCHS * STEPS).all()
    # only the interrupted run (from epoch 1) and the never-started fourth (from 0) were trained
    paths = dict(started)
    assert len(started) == 2 and paths[interrupted] == 1
    assert set(paths) - {interrupted} == set(Path(p) for p in table["run_dir"]) - set(dirs)
    assert list(paths.values()).count(0) == 1
    for d in finished:
        assert (d / "summary.json").stat().st_mtime_ns == summary_mtimes[d]

    cfg = RunDir.open(interrupted).config
    records = RunDir(interrupted, cfg).read_metrics()
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == list(range(1, EPOCHS * STEPS + 1))  # nothing logged twice, nothing lost
    assert [r["epoch"] for r in records if r["split"] == "valid"] == list(range(EPOCHS))
    for target in GRID["pruning.target"]:
        rows = table[table["pruning.target"] == str(target)]
        n_sparsity = rows["sparsity"].tolist()
        assert n_sparsity[0] == n_sparsity[1] == pytest.approx(target, abs=0.01)
