"""experiments/lr_transfer.py: the --quick sweep end to end, checked against an independent recount."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("sklearn", reason="the mlp sweep loads scikit-learn's digits")

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "lr_transfer.py"


def _load():
    spec = importlib.util.spec_from_file_location("lr_transfer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lr_transfer"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


lt = _load()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr_transfer")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        df, ratios = lt.run(out, quick=True, log=lambda s: None)
    finally:
        torch.set_num_threads(threads)
    return out, df, ratios


def test_csv_has_every_run(quick_run):
    out, df, _ = quick_run
    csv = pd.read_csv(out / lt.CSV_NAME)
    assert list(csv.columns) == list(lt.CSV_COLUMNS)
    cfg = lt.default_config(quick=True)
    expected = {
        (model, lt.setting_name(o, n), w, lr)
        for model in lt.MODELS
        for o, n in lt.SETTINGS
        for w in cfg.widths(model)
        for lr in cfg.lrs(model, lt.setting_name(o, n))
    }
    got = list(zip(csv["model"], csv["setting"], csv["width"], csv["lr"]))
    assert len(got) == len(expected)  # one seed: no duplicates
    assert set(got) == expected
    # the setting column agrees with the optimiser / normalised columns
    assert all(lt.setting_name(o, bool(n)) == s for o, n, s in zip(csv["optimiser"], csv["normalised"], csv["setting"]))


def test_losses_finite_or_flagged(quick_run):
    out, _, _ = quick_run
    csv = pd.read_csv(out / lt.CSV_NAME)
    div = csv["diverged"].astype(bool)
    assert np.isfinite(csv.loc[~div, "final_loss"]).all()
    assert np.isfinite(csv.loc[~div, "heldout_loss"]).all()
    assert np.isposinf(csv.loc[div, "final_loss"]).all()
    assert np.isfinite(csv["initial_loss"]).all()
    # cross-entropy over 10 classes starts near log(10); the adding-problem MSE near E[target^2] = 7/6
    mlp0 = csv.loc[csv["model"] == "mlp", "initial_loss"]
    rnn0 = csv.loc[csv["model"] == "rnn", "initial_loss"]
    assert (abs(mlp0 - math.log(10)) < 0.5).all()
    assert (abs(rnn0 - 7 / 6) < 0.5).all()
    # same seed, same init and data: the initial loss does not depend on the optimiser or lr
    assert (csv.groupby(["model", "width"])["initial_loss"].nunique() == 1).all()


def test_ratio_table_matches_independent_recount(quick_run):
    out, _, ratios = quick_run
    csv = pd.read_csv(out / lt.CSV_NAME)
    assert len(ratios) == len(lt.MODELS) * len(lt.SETTINGS)
    assert set(zip(ratios["model"], ratios["setting"])) == {
        (m, lt.setting_name(o, n)) for m in lt.MODELS for o, n in lt.SETTINGS
    }
    # independent recount: per (model, setting), the lr of minimal finite loss at min and max width
    for (model, setting), g in csv.groupby(["model", "setting"]):
        finite = g[np.isfinite(g["final_loss"]) & ~g["diverged"].astype(bool)]
        def best(width):
            rows = finite[finite["width"] == width]
            return rows.loc[rows["final_loss"].idxmin(), "lr"] if len(rows) else math.nan
        expected = best(g["width"].max()) / best(g["width"].min())
        row = ratios[(ratios["model"] == model) & (ratios["setting"] == setting)].iloc[0]
        assert row["ratio"] == pytest.approx(expected, nan_ok=True)
        assert row["smallest_width"] == g["width"].min() and row["largest_width"] == g["width"].max()

    # ratios.md has one table row per setting with the same ratios
    text = (out / lt.RATIOS_NAME).read_text()
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert len(table) == len(ratios)
    for line, r in zip(table, ratios.itertuples()):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == r.model and cells[1] == r.setting
        assert float(cells[4]) == pytest.approx(r.ratio, rel=1e-5, nan_ok=True)


def test_figures_written(quick_run):
    out, _, _ = quick_run
    for suffix in (".png", ".pdf"):
        path = out / f"{lt.FIGURE_STEM}{suffix}"
        assert path.is_file() and path.stat().st_size > 1000


def test_diverged_runs_are_never_best():
    # a synthetic sweep where the lowest loss belongs to a diverged (inf) run and one width diverges fully
    rows = []
    for w, losses in ((8, [1.0, 0.5, math.inf]), (16, [0.9, 0.2, 0.1]), (32, [math.inf, math.inf, math.inf])):
        for lr, loss in zip([0.25, 0.5, 1.0], losses):
            rows.append(dict(model="mlp", setting="adam", width=w, lr=lr, seed=0, final_loss=loss))
    best = lt.best_lrs(pd.DataFrame(rows)).set_index("width")["best_lr"]
    assert best[8] == 0.5 and best[16] == 1.0 and math.isnan(best[32])
    ratios = lt.transfer_ratios(pd.DataFrame(rows))
    assert math.isnan(ratios.loc[0, "ratio"])
    ratios = lt.transfer_ratios(pd.DataFrame([r for r in rows if r["width"] < 32]))
    assert ratios.loc[0, "ratio"] == 2.0  # largest width's best lr over the smallest's: 1.0 / 0.5
    assert ratios.loc[0, "best_lr_by_width"] == "2^-1 2^0"


def test_seed_mean_decides_and_any_diverged_seed_disqualifies():
    rows = [
        dict(model="rnn", setting="sgd", width=4, lr=0.5, seed=0, final_loss=0.1),
        dict(model="rnn", setting="sgd", width=4, lr=0.5, seed=1, final_loss=math.inf),
        dict(model="rnn", setting="sgd", width=4, lr=0.25, seed=0, final_loss=0.4),
        dict(model="rnn", setting="sgd", width=4, lr=0.25, seed=1, final_loss=0.2),
        dict(model="rnn", setting="sgd", width=8, lr=0.25, seed=0, final_loss=0.3),
        dict(model="rnn", setting="sgd", width=8, lr=0.25, seed=1, final_loss=0.3),
        dict(model="rnn", setting="sgd", width=8, lr=0.125, seed=0, final_loss=0.1),
        dict(model="rnn", setting="sgd", width=8, lr=0.125, seed=1, final_loss=0.6),
    ]
    ratios = lt.transfer_ratios(pd.DataFrame(rows))
    assert ratios.loc[0, "best_lr_smallest"] == 0.25  # lr 0.5 has a diverged seed
    assert ratios.loc[0, "best_lr_largest"] == 0.25  # mean 0.3 beats mean 0.35
    assert ratios.loc[0, "ratio"] == 1.0


def test_divergence_is_detected_and_stops_training():
    cfg = lt.default_config(quick=True)
    digits = lt.load_digits_data()
    res = lt.train_run("mlp", 16, "sgd", False, 2.0**12, 0, cfg, digits)
    assert res.diverged and math.isinf(res.final_loss) and res.steps_run < cfg.mlp_steps


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        lt.run(tmp_path, quick=True, seeds=[-1])
    with pytest.raises(ValueError, match="models"):
        lt.run(tmp_path, quick=True, models=["cnn"])
    with pytest.raises(TypeError, match="out_dir"):
        lt.run(3, quick=True)
    with pytest.raises(ValueError, match="unknown model"):
        lt.build_model("gru", 8)
    assert not any(tmp_path.iterdir())  # nothing written before the checks


def test_digits_split_and_standardisation():
    d = lt.load_digits_data()
    assert d.x_train.shape == (1438, 64) and d.x_test.shape == (359, 64)
    assert d.y_train.shape == (1438,) and set(torch.cat([d.y_train, d.y_test]).tolist()) == set(range(10))
    assert d.x_train.mean(0).abs().max() < 1e-5
    std = d.x_train.std(0)
    varying = std > 0
    assert torch.allclose(std[varying], torch.ones_like(std[varying]), atol=1e-4)
    assert (d.x_train[:, ~varying] == 0).all()  # constant border pixels become 0, not NaN
