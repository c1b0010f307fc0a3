"""The digits task (sequential 8 x 8 digits) through the whole path: data split, training,
evaluation, batched seeds, the sweep and the smoke table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from moduli.cli import main
from moduli.config import load_config
from moduli.reproduce import reproduce
from moduli.reproduce.estimate import train_step_flops
from moduli.run_dir import RunDir
from moduli.tasks import DigitsTask, digit_splits, digits_baselines, task_class
from moduli.tasks.digits import read_as_sequence
from moduli.training import evaluate_run, run_config

ROOT = Path(__file__).resolve().parents[2]
DIGITS, TINY = str(ROOT / "configs" / "digits.yaml"), str(ROOT / "configs" / "tiny.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(out: Path, *overrides: str):
    return load_config([DIGITS, TINY], [f"out_dir={out}", *overrides])


def test_the_split_is_fixed_stratified_and_disjoint():
    splits = digit_splits(0)
    sizes = {name: len(y) for name, (_, y) in splits.items()}
    assert sizes == {"train": 1077, "valid": 360, "test": 360}
    rows = {name: {tuple(x.tolist()) for x in images} for name, (images, _) in splits.items()}
    assert not rows["train"] & rows["test"] and not rows["valid"] & rows["test"]
    for images, labels in splits.values():
        assert images.dtype == torch.float32 and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        counts = np.bincount(labels.numpy(), minlength=10)
        assert counts.min() >= 0.9 * counts.mean()  # stratified: every class about a tenth
    again, other = digit_splits(0), digit_splits(1)
    assert torch.equal(again["test"][0], splits["test"][0])  # the same split every time
    assert not torch.equal(other["test"][0], splits["test"][0])  # digits.split_seed chooses it


def test_images_are_read_row_by_row_or_pixel_by_pixel():
    images = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 64)
    rows, pixels = read_as_sequence(images, "rows"), read_as_sequence(images, "pixels")
    assert rows.shape == (8, 2, 8) and pixels.shape == (64, 2, 1)
    assert torch.equal(rows[3, 1], images[1, 24:32])  # step 3 reads row 3
    assert torch.equal(pixels[:, 0, 0], images[0])
    with pytest.raises(ValueError, match="read must be one of rows, pixels"):
        read_as_sequence(images, "columns")


def test_a_run_trains_reports_the_test_error_and_evaluates_back(tmp_path):
    cfg = tiny(tmp_path, "train.steps_per_epoch=20", "model.hidden_size=48", "optim.lr=0.01", "pruning.method=none")
    summary = run_config(cfg, quiet=True)
    assert summary["task"] == "digits" and summary["metric"] == "error"
    assert set(summary["valid"]) == {"loss", "error", "accuracy"} and set(summary["test"]) == {"loss", "error", "accuracy"}
    assert summary["test"]["error"] < 0.8  # 40 steps already beat chance (0.9)
    evaluated = evaluate_run(RunDir.path_for(cfg))
    assert evaluated["valid"] == summary["valid"] and evaluated["test"] == summary["test"]
    assert task_class("digits").table_value(summary, "final") == (summary["test"]["error"], "test")


def test_references_and_cost_estimate():
    cfg = load_config([DIGITS])
    refs = digits_baselines(cfg)
    assert refs["majority"] == pytest.approx(0.9, abs=0.01) and refs["logistic"] < 0.1
    pixels = load_config([DIGITS], ["digits.read=pixels"])
    n, batch = cfg.model.hidden_size, cfg.train.batch_size
    assert train_step_flops(cfg) == 3.0 * batch * (8 * (2 * n * n + 2 * 8 * n) + 2 * n * 10)
    assert train_step_flops(pixels) == 3.0 * batch * (64 * (2 * n * n + 2 * 1 * n) + 2 * n * 10)
    assert DigitsTask.batchable and DigitsTask.has_test_split


def test_sweep_trains_the_seeds_batched_from_the_command_line(tmp_path, capsys):
    csv = tmp_path / "sweep.csv"
    code = main(["sweep", DIGITS, TINY, "--seeds", "0-2", "--out-dir", str(tmp_path / "runs"), "--csv", str(csv), "--quiet"])
    assert code == 0, capsys.readouterr().err
    import pandas as pd

    table = pd.read_csv(csv)
    assert (table["status"] == "finished").all() and (table["batched_runs"] == 3).all()
    assert table["valid"].nunique() == 3  # the seeds differ (validation losses)


def test_train_command_prints_the_summary(tmp_path, capsys):
    code = main(["train", DIGITS, TINY, "digits.read=pixels", "--out-dir", str(tmp_path), "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["task"] == "digits"
    (run,) = tmp_path.glob("digits-*")
    assert RunDir.open(run).config.digits.read == "pixels"


def test_smoke_table(tmp_path):
    result = reproduce("digits", "smoke", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", quiet=True, figures=False)
    assert result.failed == 0 and (result.runs["status"] == "finished").all()
    assert set(result.runs["split"]) == {"test"}  # the table reads the test error
    text = (tmp_path / "out" / "table.md").read_text()
    assert text.startswith("**Table (digits, preset smoke).** Digits: test error rate")
    assert "8 x 8 digits read by rows (8 steps of 8 pixels)" in text
    assert "logistic regression on the 64 pixels" in text
    assert "| controls | Torus DoG |" in text
