"""How much the navigation answer at 90% depends on the recipe: W_hh initialisation and pruning scope.

    python experiments/navigation_ablation.py [--preset cpu] [--seeds 0,1] [--jobs 2]

On top of a navigation preset, trains at the preset's first target sparsity: the torus DoG, the
permuted DoG and no regulariser under magnitude pruning, and the torus DoG under random pruning
(random masks with the per-matrix sparsity of magnitude pruning), for each W_hh initialisation
(identity, He-uniform) and each pruning scope (layerwise, global). Writes ``runs.csv`` (one row
per run) and ``ablation.md`` (mean and sample std of the decoding error per cell, with the
achieved sparsity of W_hh) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from moduli.reproduce.presets import load_preset  # noqa: E402
from moduli.sweep import run_sweep  # noqa: E402

# (row label, regulariser recipe, pruning method)
ROWS = (
    ("Torus DoG", "torus_dog", "magnitude"),
    ("Perm. DoG", "permuted_dog", "magnitude"),
    ("No reg.", "none", "magnitude"),
    ("Torus DoG, random pruning", "torus_dog", "random"),
)
INITS = ("identity", "he_uniform")
SCOPES = ("layerwise", "global")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def measure(preset_name: str, seeds: list[int], jobs: int, runs_dir: Path) -> pd.DataFrame:
    """One row per run: row label, init, scope, seed, decoding error, W_hh sparsity."""
    preset = load_preset("navigation", preset_name)
    target = preset.sparsities[0]
    frames = []
    for label, recipe, method in ROWS:
        paths = [*preset.configs, ROOT / "configs" / "regularizer" / f"{recipe}.yaml"]
        base = [*preset.overrides, f"pruning.method={method}", f"pruning.target={target}", f"out_dir={runs_dir}"]
        grid = {"model.recurrent_init": list(INITS), "pruning.scope": list(SCOPES)}
        table = run_sweep(paths, grid, seeds, jobs=jobs, base_overrides=base, quiet=True)
        failed = table[table["status"] != "finished"]
        if len(failed):
            raise SystemExit(f"{len(failed)} runs failed: {failed['error'].tolist()}")
        frames.append(pd.DataFrame({
            "row": label,
            "init": table["model.recurrent_init"],
            "scope": table["pruning.scope"],
            "seed": [int(s) for s in table["train.seed"]],
            "error_cm": table["value"].astype(float),
            "sparsity": table["sparsity"].astype(float),
            "w_hh_sparsity": [float(m["rnn.weight_hh_l0"]) for m in table["per_matrix_sparsity"]],
        }))
    return pd.concat(frames, ignore_index=True)


def render(runs: pd.DataFrame, preset_name: str, target: float) -> str:
    """Markdown: one row per regulariser/pruning, one column per (init, scope)."""
    cells = runs.groupby(["row", "init", "scope"], sort=False).agg(
        mean=("error_cm", "mean"), std=("error_cm", "std"), w_hh=("w_hh_sparsity", "mean"), n=("seed", "count")
    )
    columns = [(i, s) for i in INITS for s in SCOPES]
    seeds = ",".join(str(s) for s in sorted(runs["seed"].unique()))
    lines = [
        f"Navigation, preset {preset_name}, {target:.0%} target sparsity, seeds {seeds}: decoding error (cm), "
        "mean (sample std); in brackets the achieved sparsity of W_hh.",
        "",
        "| row | " + " | ".join(f"{i.replace('_', '-')} W_hh, {s}" for i, s in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label, _, _ in ROWS:
        values = []
        for init, scope in columns:
            c = cells.loc[(label, init, scope)]
            values.append(f"{c['mean']:.1f} ({c['std']:.1f}) [{c['w_hh']:.1%}]")
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="navigation preset (name or .yaml file; default cpu)")
    parser.add_argument("--seeds", type=_ints, default=[0, 1], help="seeds (default 0,1)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (default 2)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/navigation_ablation"), help="parent of the runs")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "navigation_ablation")
    args = parser.parse_args(argv)
    runs = measure(args.preset, args.seeds, args.jobs, args.runs_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "runs.csv", index=False)
    text = render(runs, args.preset, load_preset("navigation", args.preset).sparsities[0])
    (args.out / "ablation.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
