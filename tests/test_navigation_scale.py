"""experiments/navigation_scale.py: the --quick study end to end, checked against the run
directories and the references recomputed independently; reuse of finished runs; bad arguments."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from moduli.config import load_config
from moduli.run_dir import RunDir
from moduli.tasks import navigation_baselines

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "navigation_scale.py"


def _load():
    spec = importlib.util.spec_from_file_location("navigation_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["navigation_scale"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


ns = _load()
SEEDS = [0, 1]


def quick_config(recipe, seed: int, runs: Path):
    """The run config of a quick-study cell, written out key by key (not through the script)."""
    files = [ROOT / "configs" / "navigation.yaml", ROOT / "configs" / "regularizer" / "none.yaml",
             ROOT / "configs" / "pruning" / "none.yaml"]
    return load_config(files, [
        f"out_dir={runs}", "train.device=cpu", "model.hidden_size=16", "navigation.num_place_cells=32",
        "navigation.seq_len=5", "train.batch_size=8", "train.epochs=2", "train.steps_per_epoch=10",
        "navigation.eval_batches=1", "navigation.eval_batch_size=16",
        f"navigation.place_cell_tuning={recipe.tuning}", f"model.recurrent_init={recipe.init}",
        f"navigation.velocity_units={recipe.velocity}", f"optim.name={recipe.optimiser}", f"optim.lr={recipe.lr}",
        "optim.weight_decay=0", f"train.seed={seed}",
    ])


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("navigation_scale")
    out, runs = tmp / "out", tmp / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert ns.main(["--quick", "--out", str(out), "--runs-dir", str(runs), "--seeds", "0,1"]) == 0
    finally:
        torch.set_num_threads(threads)
    recipes = ns.recipes_of(ns.DEFAULT_GRID, ns.QUICK_RECIPES)
    return out, runs, recipes


def test_quick_recipes_are_what_their_names_say(quick):
    _, runs, recipes = quick
    assert sorted(r.name for r in recipes) == sorted(ns.QUICK_RECIPES)
    cfg = quick_config(next(r for r in recipes if r.tuning == "gaussian"), 0, runs)
    assert (cfg.navigation.place_cell_tuning, cfg.model.recurrent_init, cfg.navigation.velocity_units) == (
        "gaussian", "identity", "per_second")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 0.003, 0.0)
    assert (cfg.regularizer.kind, cfg.pruning.method) == ("none", "none")


def test_curves_are_the_runs_validation_records(quick):
    out, runs, recipes = quick
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == list(ns.CURVE_COLUMNS)
    assert len(curves) == len(recipes) * len(SEEDS) * 2  # 20 steps, an evaluation every 10
    assert set(curves["step"]) == {10, 20} and (curves["status"] == "finished").all()
    for recipe in recipes:
        for seed in SEEDS:
            path = RunDir.path_for(quick_config(recipe, seed, runs))  # the same run directory
            records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
            valid = [r for r in records if r["split"] == "valid"]
            rows = curves[(curves["recipe"] == recipe.name) & (curves["seed"] == seed)].sort_values("step")
            assert list(rows["run_dir"].unique()) == [str(path)]
            assert list(rows["step"]) == [r["step"] for r in valid]
            assert list(rows["error_cm"]) == pytest.approx([r["error_cm"] for r in valid], rel=1e-12)
            assert list(rows["loss"]) == pytest.approx([r["loss"] for r in valid], rel=1e-12)
    # distinct seeds and recipes give distinct runs
    assert curves.groupby(["recipe", "seed"])["run_dir"].nunique().eq(1).all()
    assert curves["run_dir"].nunique() == len(recipes) * len(SEEDS)


def test_references_match_the_baselines_per_tuning_and_seed(quick):
    out, runs, recipes = quick
    refs = pd.read_csv(out / "references.csv")
    assert sorted(zip(refs["tuning"], refs["seed"])) == sorted((r.tuning, s) for r in recipes for s in SEEDS)
    for recipe in recipes:
        for seed in SEEDS:
            expected = navigation_baselines(quick_config(recipe, seed, runs), seed=seed)
            row = refs[(refs["tuning"] == recipe.tuning) & (refs["seed"] == seed)].iloc[0]
            for key in ("start", "centre", "true", "loss_floor", "loss_uniform"):
                assert row[key] == pytest.approx(expected[key], rel=1e-9)
    gaussian, dog = refs[refs["tuning"] == "gaussian"], refs[refs["tuning"] == "dog"]
    assert (gaussian["loss_uniform"] - gaussian["loss_floor"]).min() > (dog["loss_uniform"] - dog["loss_floor"]).max()


def test_summary_and_figure(quick):
    out, _, recipes = quick
    curves = pd.read_csv(out / "curves.csv")
    text = (out / "summary.md").read_text()
    for recipe in recipes:
        final = curves[(curves["recipe"] == recipe.name) & (curves["step"] == 20)]["error_cm"].mean()
        assert f"| {recipe.name} | {final:.1f} (" in text
    for suffix in (".png", ".pdf"):
        assert (out / f"{ns.FIGURE}{suffix}").stat().st_size > 10_000


def test_a_second_call_reuses_the_finished_runs(quick, monkeypatch):
    out, runs, recipes = quick
    summaries = {p: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")}
    assert len(summaries) == len(recipes) * len(SEEDS)
    import moduli.training.loop as loop

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop.Trainer, "run", refuse)
    before = pd.read_csv(out / "curves.csv")
    again = out.parent / "again"
    assert ns.main(["--quick", "--out", str(again), "--runs-dir", str(runs)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(again / "curves.csv"), before)
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")} == summaries


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--grid", "colour=red"], "--grid 'colour=red' must be axis=v1,v2"),
        (["--grid", "init=eye"], "--grid init value 'eye' is not allowed; allowed: default, identity, orthogonal, he_uniform"),
        (["--grid", "optim=adam"], "optim value 'adam' must be name@lr"),
        (["--grid", "optim=rmsprop@1e-3"], "optim value 'rmsprop@1e-3' must be name@lr"),
        (["--recipes", "nothing-*"], "--recipes nothing-* matches no recipe"),
        (["--set", "optim.lr=1"], "--set 'optim.lr=1' changes optim.lr, which the study sets itself"),
        (["--set", "navigation.place_cell_sigma=-1"], "navigation.place_cell_sigma = -1.0 is out of range"),
        (["--steps", "25"], "--steps 25 is not a multiple of --eval-every 10"),
        (["--jobs", "0"], "--jobs = 0 is out of range"),
        (["--seeds", "a"], "seeds 'a' must be integers"),
    ],
)
def test_bad_arguments_exit_2_before_any_run(tmp_path, capsys, argv, fragment):
    runs = tmp_path / "runs"
    assert ns.main(["--quick", "--out", str(tmp_path / "out"), "--runs-dir", str(runs), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err
    assert not runs.exists() and not (tmp_path / "out").exists()


def test_list_prints_the_selected_recipes(capsys):
    assert ns.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "80 recipes" and len(set(lines[:-1])) == 80
    assert ns.main(["--list", "--grid", "tuning=gaussian", "--grid", "optim=adam@3e-3", "--recipes", "*-per_second-*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"gaussian-{i}-per_second-adam@0.003" for i in ("default", "identity", "he_uniform", "orthogonal")]


@pytest.mark.parametrize("patterns", [(), ("gaussian-identity-*", "dog-default-per_step-*"), ("*-per_second-adam@*",)])
def test_sweep_calls_train_exactly_the_selected_recipes(patterns):
    import itertools

    selected = ns.recipes_of(ns.DEFAULT_GRID, patterns)
    trained = []
    for fixed, grid, members in ns.sweep_calls(selected):
        optimiser = fixed[0].removeprefix("optim.name=")
        call = [ns.Recipe(t, i, v, optimiser, lr).name for t, i, v, lr in itertools.product(*grid.values())]
        assert sorted(call) == sorted(r.name for r in members)  # the call trains what it says
        trained += call
    assert sorted(trained) == sorted(r.name for r in selected)  # nothing missing, nothing extra
    if not patterns:
        assert len(ns.sweep_calls(selected)) == 2  # one process pool per optimiser
