"""Tests of ``moduli reproduce``: presets, cells, statistics, aggregation, rendering, end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from moduli.cli import main
from moduli.config import config_hash, load_config
from moduli.reproduce import (
    aggregate,
    build_cells,
    build_columns,
    collect_runs,
    load_preset,
    mean_std,
    reproduce,
    table_spec,
    welch_test,
)
from moduli.reproduce.estimate import _forward_flops_per_sequence, estimate_gpu_hours, train_step_flops
from moduli.reproduce.presets import PROJECT_ROOT

torch.set_num_threads(1)


def _write_preset(tmp_path: Path, text: str, name: str = "custom.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


# ---------------------------------------------------------------- presets and the command line
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["reproduce", "navigatoin", "--preset", "smoke"], "unknown table 'navigatoin'"),
        (["reproduce", "navigation", "--preset", "smok"], "unknown preset 'smok'"),
        (["reproduce", "navigation", "--preset", "missing.yaml"], "does not exist"),
    ],
)
def test_cli_rejects_unknown_table_and_preset(argv, expected, capsys):
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("table: [navigation\n", "malformed YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\nseed: [0]\n", "unknown key 'seed' (did you mean 'seeds'?)"),
        ("table: adding\nconfigs: [configs/adding.yaml]\n", "this preset is used for table 'navigation'"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\noverrides: [pruning.target=0.5]\n", "pruning.target is set by the table"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\nregularizer: {kind: l1}\n", "regularizer.kind is set by the table"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\nregularizer: {invert: true}\n", "regularizer.invert is set by the table"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\nseeds: [0, 0]\n", "seeds must be a non-empty list of distinct"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\nsparsities: [0.9, 1.0]\n", "sparsities must be"),
        ("table: navigation\nconfigs: [configs/nowhere.yaml]\n", "config file 'configs/nowhere.yaml' does not exist"),
        ("table: navigation\nconfigs: [configs/navigation.yaml]\ntrain: {epochs: 0}\n", "train.epochs = 0 is out of range"),
        ("table: navigation\nconfigs: [configs/adding.yaml]\n", "needs task 'navigation'"),
    ],
)
def test_cli_rejects_malformed_presets_in_one_line(tmp_path, text, expected, capsys):
    preset = _write_preset(tmp_path, text)
    argv = ["reproduce", "navigation", "--preset", preset, "--out", str(tmp_path / "o"), "--runs-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_language_paper_preset_names_missing_data_before_running(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data/wikitext-2 does not exist here
    assert main(["reproduce", "language", "--preset", "paper", "--dry-run"]) == 2
    assert "language.data_dir = 'data/wikitext-2' has no train, valid, test split" in _one_error_line(capsys)


def test_shipped_presets_load_and_paper_uses_the_task_files_unchanged():
    for table in ("navigation", "language", "adding"):
        spec = table_spec(table)
        for name in ("smoke", "cpu", "paper"):
            preset = load_preset(table, name)
            assert preset.table == table and preset.configs[0] == PROJECT_ROOT / "configs" / f"{table}.yaml"
        paper = load_preset(table, "paper")
        assert paper.overrides == () and len(paper.seeds) == 5
        assert paper.sparsities == spec.default_sparsities
        assert len(load_preset(table, "smoke").seeds) == 2


def test_navigation_cpu_global_preset_differs_from_cpu_dog_only_in_pruning_scope():
    presets = PROJECT_ROOT / "configs" / "reproduce" / "navigation"
    layerwise = load_preset("navigation", str(presets / "cpu-dog.yaml"))
    global_ = load_preset("navigation", str(presets / "cpu-global.yaml"))
    assert (layerwise.name, global_.name) == ("cpu-dog", "cpu-global")
    cfg = {p.name: load_config(list(p.configs), list(p.overrides)) for p in (layerwise, global_)}
    assert (cfg["cpu-dog"].pruning.scope, cfg["cpu-global"].pruning.scope) == ("layerwise", "global")
    cfg["cpu-global"].pruning.scope = "layerwise"
    assert cfg["cpu-dog"] == cfg["cpu-global"]
    assert (layerwise.seeds, layerwise.sparsities) == (global_.seeds, global_.sparsities)


def test_navigation_cpu_preset_is_the_recipe_that_learns():
    cfg = load_config(*[list(x) for x in (load_preset("navigation", "cpu").configs, load_preset("navigation", "cpu").overrides)])
    nav, model = cfg.navigation, cfg.model
    assert (nav.place_cell_tuning, nav.velocity_units, model.recurrent_init) == ("gaussian", "per_second", "identity")
    assert (model.hidden_size, nav.num_place_cells, cfg.pruning.scope) == (256, 256, "layerwise")


def test_navigation_cpu_large_preset_is_the_cpu_recipe_wider_with_five_seeds_and_global_pruning():
    presets = PROJECT_ROOT / "configs" / "reproduce" / "navigation"
    cpu, large = load_preset("navigation", "cpu"), load_preset("navigation", str(presets / "cpu-large.yaml"))
    cfg_cpu, cfg_large = (load_config(list(p.configs), list(p.overrides)) for p in (cpu, large))
    assert (cfg_large.model.hidden_size, cfg_large.navigation.num_place_cells, cfg_large.pruning.scope) == (512, 512, "global")
    assert large.seeds == (0, 1, 2, 3, 4) and large.sparsities == cpu.sparsities and large.dense == cpu.dense
    cfg_large.model.hidden_size, cfg_large.navigation.num_place_cells = 256, 256
    cfg_large.pruning.scope = "layerwise"
    assert cfg_large == cfg_cpu  # nothing else differs: recipe, steps, strength (chosen by the same rule)


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "configs" / "reproduce").glob("*/*.yaml")),
                         ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_every_committed_preset_plans_without_error(path, tmp_path, capsys, monkeypatch):
    argv = ["reproduce", path.parent.name, "--preset", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs"),
            "--out", str(tmp_path / "out")]
    if path.parent.name == "language" and path.stem != "smoke":  # WikiText-2 is not shipped (smoke: the tiny corpus)
        monkeypatch.chdir(tmp_path)  # refused by name, before any work
        assert main(argv) == 2
        assert "language.data_dir = 'data/wikitext-2' has no " in _one_error_line(capsys)
    else:
        assert main(argv) == 0, capsys.readouterr().err
        assert " runs (" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


def test_paper_dry_run_prints_a_gpu_estimate_and_writes_nothing(tmp_path, capsys):
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["reproduce", "navigation", "--preset", "paper", "--dry-run", "--out", str(out), "--runs-dir", str(runs), "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "GPU hours" in err and "not a measurement" in err
    # 11 run sets x (2 magnitude + 2 random) + 8 geometric x 2 moduli + lottery x 3, times 5 seeds
    assert "315 runs (5 seeds), 0 finished, 315 to train" in err
    assert not out.exists() and not runs.exists()


# ---------------------------------------------------------------- cells
def test_cells_cover_every_applicable_row_and_column_once(tmp_path):
    spec, preset = table_spec("adding"), load_preset("adding", "smoke")
    groups, cells = build_cells(spec, preset, tmp_path)
    keys = [(c.run_set, c.column, c.seed) for c in cells]
    assert len(keys) == len(set(keys))
    geometric = [rs.key for rs in spec.run_sets if rs.geometric and not rs.lottery]
    plain = [rs.key for rs in spec.run_sets if not rs.geometric]
    for seed in preset.seeds:
        for rs in geometric:
            for col in ("dense", "magnitude@0.95", "random@0.95", "moduli@0.95"):
                assert (rs, col, seed) in keys
        for rs in plain:
            assert (rs, "moduli@0.95", seed) not in keys and (rs, "random@0.95", seed) in keys
        assert ("lottery", "dense", seed) not in keys and ("lottery", "moduli@0.95", seed) in keys
    assert len({c.run_dir for c in cells}) == len(cells)  # no two cells share a run directory
    # every cell's config is exactly what run_sweep would load from the group's files and overrides
    for cell in cells[:: max(1, len(cells) // 6)]:
        loaded = load_config(list(groups[cell.group].paths), list(cell.overrides))
        assert loaded == cell.config and config_hash(loaded) == config_hash(cell.config)
    lottery = [c for c in cells if c.run_set == "lottery"]
    assert all(c.config.pruning.lottery for c in lottery)
    assert {c.config.regularizer.manifold for c in cells if c.run_set == "learned_s3"} == {"s3"}


def test_language_table_inverts_diffusion_and_ripple_and_adds_a_permuted_inverted_diffusion(tmp_path):
    def regularizers(table: str) -> dict[str, set]:
        _, cells = build_cells(table_spec(table), load_preset(table, "smoke"), tmp_path / table)
        out: dict[str, set] = {}
        for c in cells:
            r = c.config.regularizer
            out.setdefault(c.run_set, set()).add((r.inhibitor, r.invert, r.permute, r.mean_matched))
        return out

    language = regularizers("language")
    assert language["inverted_diffusion"] == {("diffusion", True, False, "plain_dog")}
    assert language["inverted_ripple"] == {("ripple", True, False, "plain_dog")}
    assert language["permuted_inverted_diffusion"] == {("diffusion", True, True, "plain_dog")}
    assert language["permuted_dog"] == {("dog", False, True, "plain_dog")}
    assert "torus_diffusion" not in language and "torus_ripple" not in language
    labels = {row.label: row.runs for row in table_spec("language").rows}
    assert labels["Perm. inv. diffusion"] == "permuted_inverted_diffusion" and labels["Inv. ripple"] == "inverted_ripple"
    for table in ("navigation", "adding"):  # plain diffusion and ripple, as the research code ran them
        runs = regularizers(table)
        assert runs["torus_diffusion"] == {("diffusion", False, False, "plain_dog")}
        assert runs["torus_ripple"] == {("ripple", False, False, "plain_dog")}
        assert not any(invert for sets in runs.values() for _, invert, _, _ in sets)


@pytest.mark.parametrize("rule, value", [("plain_dog", "14.76"), ("applied", "66.39")])
def test_caption_states_the_mean_matched_constant(rule, value):
    from moduli.reproduce.render import caption_text

    preset = load_preset("adding", "cpu")
    cfg = load_config(list(preset.configs), list(preset.overrides) + [f"regularizer.mean_matched={rule}"])
    caption = caption_text(table_spec("adding"), preset, cfg, pd.DataFrame())
    assert f"(expected {value}" in caption and f"regularizer.mean_matched = {rule}" in caption  # N = 128
    assert "10 + 1 stabilising epochs x 200 steps" in caption
    assert "Learned positions: the weights' adam at lr 0.001, clipped with the weights, gradient x 0.99^epoch, " \
           "frozen during the stabilising epochs; learned_r3 starts at 10 x N(0, 1); learned_r9 starts at 10 x N(0, 1)." \
           in caption


# ---------------------------------------------------------------- statistics
def test_mean_std_uses_the_sample_standard_deviation():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == pytest.approx(math.sqrt(5.0 / 3.0))
    assert math.isnan(mean_std([3.0])[1]) and math.isnan(mean_std([])[0])
    with pytest.raises(ValueError, match="finite"):
        mean_std([1.0, float("nan")])


def test_welch_test_matches_scipy_and_is_nan_below_two_values():
    a, b = [1.0, 2.5, 2.0, 4.0], [3.0, 5.0, 4.5]
    ref = stats.ttest_ind(a, b, equal_var=False)
    # an independent computation of Welch's t statistic
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    assert welch_test(a, b)[0] == pytest.approx((np.mean(a) - np.mean(b)) / math.sqrt(va + vb))
    assert welch_test(a, b) == pytest.approx((ref.statistic, ref.pvalue))
    assert all(math.isnan(x) for x in welch_test([1.0], b))
    assert all(math.isnan(x) for x in welch_test([1.0, 1.0], [1.0, 1.0]))


def test_latex_escaping_of_labels_and_captions():
    from moduli.reproduce.render import _latex_escape

    assert _latex_escape("R^3 & S^3") == r"$R^{3}$ \& $S^{3}$"
    assert _latex_escape("90% x_y a^b † p < 0.05") == r"90\% x\_y a\^{}b $^{\dagger}$ p $<$ 0.05"


@pytest.mark.parametrize("scope, phrase", [("global", "target global sparsity"),
                                           ("layerwise", "target sparsity of every pruned matrix")])
def test_caption_states_the_pruning_scope(scope, phrase):
    from moduli.reproduce.render import caption_text

    preset = load_preset("navigation", "smoke")
    cfg = load_config(list(preset.configs), list(preset.overrides) + [f"pruning.scope={scope}"])
    caption = caption_text(table_spec("navigation"), preset, cfg, pd.DataFrame())
    assert phrase in caption and f"{scope} magnitude pruning" in caption
    other = "layerwise" if scope == "global" else "global"
    assert f"{other} magnitude pruning" not in caption


def test_caption_names_the_recipe_options_only_off_their_defaults():
    from moduli.reproduce.render import scale_text

    preset = load_preset("navigation", str(PROJECT_ROOT / "configs" / "reproduce" / "navigation" / "cpu-dog.yaml"))
    cfg = load_config(list(preset.configs), list(preset.overrides))
    assert scale_text(cfg) == (
        "hidden 256, 256 place cells, 20 steps per trajectory, batch 32, 7 epochs x 100 steps, adamw lr 0.003, "
        "regulariser strength 0.1, linear pruning schedule"
    )  # the committed cpu-dog table's caption, unchanged
    options = ["navigation.place_cell_tuning=gaussian", "navigation.start_tuning=dog",
               "navigation.velocity_units=per_second", "model.recurrent_init=identity", "model.recurrent_init_scale=0.9"]
    text = scale_text(load_config(list(preset.configs), list(preset.overrides) + options))
    assert ("256 place cells, 20 steps per trajectory, gaussian place-cell tuning, dog start state, "
            "velocity per second, identity x 0.9 W_hh initialisation, batch 32") in text
    adding = load_config([PROJECT_ROOT / "configs" / "adding.yaml"], ["model.recurrent_init=he_uniform"])
    assert "sequence length 50, he-uniform W_hh initialisation, batch 32" in scale_text(adding)


# ---------------------------------------------------------------- aggregation on synthetic runs
def _fake_summary(task: str, value: float, pruned: float | None) -> dict:
    summary = {"task": task, "metric": "error_cm", "value": value, "valid": {"error_cm": value},
               "sparsity": 0.9, "per_matrix_sparsity": {"rnn.weight_hh_l0": 0.95, "decoder.weight": 0.8},
               "sparsity_denominator": 100, "steps": 10, "wall_time_s": 1.5, "device": "cpu"}
    if pruned is not None:
        summary["pruned_model"] = {"loss": 1.0, "error_cm": pruned}
    return summary


def test_aggregation_of_synthetic_runs(tmp_path):
    preset = load_preset("navigation", _write_preset(tmp_path, (
        "table: navigation\nconfigs: [configs/navigation.yaml, configs/tiny.yaml]\n"
        "seeds: [0, 1, 2]\nsparsities: [0.9]\ndense: false\n"
    )))
    spec = table_spec("navigation")
    _, cells = build_cells(spec, preset, tmp_path / "runs")
    rng = np.random.default_rng(7)
    expected: dict[tuple[str, str], list[float]] = {}
    special = {("l1", "magnitude@0.9", 1): "failed", ("l1", "magnitude@0.9", 2): "nan",
               ("klein_dog", "moduli@0.9", 0): "failed", ("klein_dog", "moduli@0.9", 1): "failed",
               ("circle_dog", "random@0.9", 2): "missing"}
    for cell in cells:
        path = cell.run_dir
        kind = special.get((cell.run_set, cell.column, cell.seed))
        if kind == "missing":
            continue
        path.mkdir(parents=True)
        if kind == "failed":
            (path / "status.json").write_text(json.dumps({"status": "failed", "error": "DivergenceError: nan"}))
            continue
        value = float("nan") if kind == "nan" else float(rng.uniform(10, 90))
        pruned = float(rng.uniform(10, 90)) if cell.run_set == "lottery" else None
        (path / "summary.json").write_text(json.dumps(_fake_summary("navigation", value, pruned)))
        if kind is None:
            expected.setdefault((cell.run_set, cell.column), []).append(value)
            if pruned is not None:
                expected.setdefault(("lottery/pruned", cell.column), []).append(pruned)

    columns = build_columns(preset.sparsities, preset.dense)
    runs = collect_runs(spec, cells, columns)
    table = aggregate(spec, runs, columns)
    # one row per displayed applicable cell: 13 + 2 lottery rows in magnitude and random, 10 + 2 in moduli
    assert len(table) == 15 + 15 + 12
    for rec in table.to_dict("records"):
        vals = expected.get((rec["row"], rec["column"]), [])
        assert rec["n"] == len(vals)
        if len(vals):
            assert rec["mean"] == pytest.approx(np.mean(vals))
        if len(vals) >= 2:
            assert rec["std"] == pytest.approx(np.std(vals, ddof=1))
        else:
            assert math.isnan(rec["std"])
        ref = expected.get(("none", rec["column"]), [])
        if rec["row"] != "none" and len(vals) >= 2 and len(ref) >= 2:
            direct = stats.ttest_ind(vals, ref, equal_var=False)
            assert rec["t_vs_noreg"] == pytest.approx(direct.statistic)
            assert rec["p_vs_noreg"] == pytest.approx(direct.pvalue)
        else:
            assert math.isnan(rec["p_vs_noreg"])
        rand = expected.get((rec["row"], "random@0.9"), [])
        if rec["method"] != "random" and len(vals) >= 2 and len(rand) >= 2:
            assert rec["p_vs_random"] == pytest.approx(stats.ttest_ind(vals, rand, equal_var=False).pvalue)
        else:
            assert math.isnan(rec["p_vs_random"])
        assert rec["recurrent_sparsity"] == pytest.approx(0.95) or rec["n"] == 0

    def cell(row: str, column: str) -> dict:
        hit = table[(table["row"] == row) & (table["column"] == column)]
        return hit.iloc[0].to_dict()

    assert (cell("l1", "magnitude@0.9")["failed"], cell("l1", "magnitude@0.9")["n"]) == (2, 1)
    assert (cell("klein_dog", "moduli@0.9")["failed"], cell("klein_dog", "moduli@0.9")["n"]) == (2, 1)
    assert (cell("circle_dog", "random@0.9")["missing"], cell("circle_dog", "random@0.9")["n"]) == (1, 2)
    # the torus DoG row appears in three groups with the same numbers
    torus = table[(table["row"] == "torus_dog") & (table["column"] == "magnitude@0.9")]
    assert list(torus["label"]) == ["Torus DoG", "Torus", "DoG"] and torus["mean"].nunique() == 1
    status = runs.set_index(["row", "column", "seed"])["status"]
    assert status[("l1", "magnitude@0.9", 2)] == "failed"  # finished with a NaN metric counts as failed
    assert status[("circle_dog", "random@0.9", 2)] == "missing"

    from moduli.reproduce.pipeline import _write_tables

    _, _, files = _write_tables(spec, preset, cells, tmp_path / "out")
    md = (tmp_path / "out" / "table.md").read_text()
    assert "[1/3 seeds; 2 failed]" in md and "[2/3 seeds; 1 missing]" in md
    csv = pd.read_csv(tmp_path / "out" / "table.csv")
    assert {"mean", "std", "n", "failed", "p_vs_noreg", "p_vs_random"} <= set(csv.columns)
    assert csv.loc[(csv["row"] == "l1") & (csv["column"] == "magnitude@0.9"), "failed"].tolist() == [2]
    assert len(pd.read_csv(tmp_path / "out" / "runs.csv")) == len(runs)


# ---------------------------------------------------------------- the GPU estimate
def test_forward_flop_count_matches_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    from moduli.models.adding import AddingRNN
    from moduli.models.path_integration import PathIntegrationRNN

    b, t, n, p = 3, 4, 8, 5
    with FlopCounterMode(display=False) as counter:
        PathIntegrationRNN(p, n, "relu", None)(torch.randn(t, b, 2), torch.rand(b, p))
    cfg = load_config(["configs/navigation.yaml"], [f"model.hidden_size={n}", f"navigation.num_place_cells={p}",
                                                    f"navigation.seq_len={t}"])
    assert counter.get_total_flops() == b * _forward_flops_per_sequence(cfg)[0]
    with FlopCounterMode(display=False) as counter:
        AddingRNN(n, "relu", None)(torch.randn(t, b, 2))
    cfg = load_config(["configs/adding.yaml"], [f"model.hidden_size={n}", f"adding.seq_len={t}"])
    assert counter.get_total_flops() == b * _forward_flops_per_sequence(cfg)[0]
    assert train_step_flops(cfg) == 3 * cfg.train.batch_size * _forward_flops_per_sequence(cfg)[0]
    lottery = load_config(["configs/adding.yaml"], ["pruning.lottery=true", "train.stabilise_epochs=0"])
    plain = load_config(["configs/adding.yaml"], ["train.stabilise_epochs=0"])
    assert estimate_gpu_hours([lottery]) == pytest.approx(2 * estimate_gpu_hours([plain]))
    # stabilising epochs lengthen the first training only: 100 + 10 epochs, and 100 more for a lottery
    stabilised = load_config(["configs/adding.yaml"], ["train.stabilise_epochs=10"])
    stabilised_lottery = load_config(["configs/adding.yaml"], ["train.stabilise_epochs=10", "pruning.lottery=true"])
    assert estimate_gpu_hours([stabilised]) == pytest.approx(1.1 * estimate_gpu_hours([plain]))
    assert estimate_gpu_hours([stabilised_lottery]) == pytest.approx(2.1 * estimate_gpu_hours([plain]))


def test_estimate_from_a_measured_step_time():
    """Training steps x the measured step, plus evaluation at a third of a step per batch of sequences."""
    cfg = load_config(["configs/navigation.yaml"])  # 30 epochs x 1000 steps, batch 200, 5 x 200 eval sequences
    hours = estimate_gpu_hours([cfg], step_seconds=0.05)
    assert hours == pytest.approx((30 * 1000 * 0.05 + 30 * 0.05 * 1000 / 200 / 3) / 3600)
    lottery = load_config(["configs/navigation.yaml"], ["pruning.lottery=true"])
    assert estimate_gpu_hours([lottery, cfg], step_seconds=0.05) == pytest.approx(3 * hours)
    assert estimate_gpu_hours([cfg], step_seconds=0.05) != pytest.approx(estimate_gpu_hours([cfg]))
    for bad in (0.0, -1.0, "fast", True):
        with pytest.raises(ValueError, match="step_seconds"):
            estimate_gpu_hours([cfg], step_seconds=bad)


# ---------------------------------------------------------------- end to end
def _tables(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("table.md", "table.tex", "table.csv", "runs.csv")}


def _no_training(cfg, quiet):
    raise AssertionError(f"run {cfg.out_dir} was recomputed")


def test_smoke_navigation_end_to_end_and_byte_identical_regeneration(tmp_path):
    out, runs_dir = tmp_path / "out", tmp_path / "runs"
    spec, preset = table_spec("navigation"), load_preset("navigation", "smoke")
    first = reproduce("navigation", "smoke", out_dir=out, runs_dir=runs_dir, quiet=True, figures=False)
    assert first.to_train == len(first.cells) and first.failed == 0

    md = (out / "table.md").read_text()
    columns = build_columns(preset.sparsities, preset.dense)
    header = next(line for line in md.splitlines() if line.startswith("| Group"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Group", "Regulariser"] + [c.label for c in columns]
    body = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Group")]
    assert [line.split("|")[2].strip() for line in body] == [r.label for r in spec.rows]
    no_reg = next(line for line in body if line.split("|")[2].strip() == "No reg.")
    assert no_reg.count("n/a") == 2  # no moduli pruning without a geometric regulariser
    lottery = next(line for line in body if "Re-initialised" in line)
    assert lottery.count("n/a") == 4  # dense and the three 98% columns
    assert "Preset smoke" in md and "Welch" in md
    tex = (out / "table.tex").read_text()
    assert tex.count(r"\midrule") == 4 and r"\begin{tabular}{l" + "r" * len(columns) + "}" in tex

    table = pd.read_csv(out / "table.csv")
    assert set(table["label"]) == {r.label for r in spec.rows}
    assert set(table["column"]) == {c.key for c in columns}
    assert (table["n"] == len(preset.seeds)).all() and (table["failed"] == 0).all()
    assert np.isfinite(table["mean"]).all() and np.isfinite(table["std"]).all()
    assert table["preset"].unique().tolist() == ["smoke"]
    runs = pd.read_csv(out / "runs.csv")
    assert (runs["status"] == "finished").all() and np.isfinite(runs["value"]).all()
    # the achieved sparsity of the pruned columns is the target (global magnitude pruning)
    pruned = runs[runs["method"] != "none"]
    assert np.allclose(pruned["sparsity"], pruned["target"], atol=0.01)

    before = _tables(out)
    stamps = {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/summary.json")}
    assert len(stamps) == len({c.run_dir for c in first.cells})
    second = reproduce("navigation", "smoke", out_dir=out, runs_dir=runs_dir, quiet=True, figures=False,
                       train_fn=_no_training)
    assert second.to_train == 0 and second.failed == 0
    assert _tables(out) == before
    assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("*/summary.json")} == stamps


@pytest.mark.slow
@pytest.mark.parametrize("table", ["adding", "language"])
def test_smoke_adding_and_language_end_to_end(tmp_path, table, monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT)  # the language smoke preset reads data/tiny-wikitext
    result = reproduce(table, "smoke", out_dir=tmp_path / "out", runs_dir=tmp_path / "runs", quiet=True, figures=False)
    assert result.failed == 0
    frame = pd.read_csv(tmp_path / "out" / "table.csv")
    assert (frame["n"] == 2).all() and np.isfinite(frame["mean"]).all()
    md = (tmp_path / "out" / "table.md").read_text()
    if table == "adding":
        assert "1/6" in md and "R^3" in md
    else:
        assert "Data: trained on data/tiny-wikitext/train" in md
