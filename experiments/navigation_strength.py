"""Regulariser strength of a navigation preset, chosen by the rule its preset file states.

    python experiments/navigation_strength.py [--preset cpu] [--strengths 0.1,0.03,...] [--seeds 10,11] [--jobs 2]

With ``reduction: mean`` the per-weight penalty of strength s is s / N^2 times the inhibitor, so
the paper's 0.1 at N = 4096 is 256 times weaker per weight than 0.1 at N = 256. The rule, fixed
before any table number is seen: train the preset's dense model with the torus DoG at each
candidate strength and without a regulariser, on seeds the table does not use (their evaluation
trajectories differ from the table's), and take **the largest strength whose mean validation
decoding error is within 10 % of the unregularised model's**. Writes ``strengths.csv`` (one row per
run) and ``strengths.md`` (means, the threshold and the choice) to ``--out``.
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

TOLERANCE = 0.10  # a strength qualifies when its error is at most (1 + TOLERANCE) x the unregularised one
STRENGTHS = (0.1, 0.03, 0.01, 0.003, 0.001, 0.0003)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def measure(preset_name: str, strengths: list[float], seeds: list[int], jobs: int, runs_dir: Path) -> pd.DataFrame:
    """One row per run: regulariser (torus_dog / none), strength, seed, validation error (cm)."""
    preset = load_preset("navigation", preset_name)
    base = [o for o in preset.overrides if not o.startswith("regularizer.strength=")]
    base += [f"out_dir={runs_dir}"]
    frames = []
    for recipe, grid in (("torus_dog", {"regularizer.strength": strengths}), ("none", {})):
        paths = [*preset.configs, ROOT / "configs" / "regularizer" / f"{recipe}.yaml", ROOT / "configs" / "pruning" / "none.yaml"]
        table = run_sweep(paths, grid, seeds, jobs=jobs, base_overrides=base, quiet=True)
        failed = table[table["status"] != "finished"]
        if len(failed):
            raise SystemExit(f"{len(failed)} runs failed: {failed['error'].tolist()}")
        frames.append(pd.DataFrame({
            "regularizer": recipe,
            "strength": [float(s) for s in table["regularizer.strength"]] if grid else 0.0,
            "seed": [int(s) for s in table["train.seed"]],
            "error_cm": table["value"].astype(float),
            "run_dir": table["run_dir"],
        }))
    return pd.concat(frames, ignore_index=True)


def choose(runs: pd.DataFrame) -> tuple[pd.DataFrame, float, float | None]:
    """(mean error per strength, the threshold, the chosen strength or None if none qualifies)."""
    means = runs.groupby(["regularizer", "strength"], as_index=False)["error_cm"].agg(["mean", "std", "count"])
    reference = float(means.loc[means["regularizer"] == "none", "mean"].iloc[0])
    threshold = (1 + TOLERANCE) * reference
    dog = means[means["regularizer"] == "torus_dog"]
    qualifying = dog[dog["mean"] <= threshold]
    chosen = float(qualifying["strength"].max()) if len(qualifying) else None
    return means, threshold, chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", help="navigation preset (name or .yaml file; default cpu)")
    parser.add_argument("--strengths", type=_floats, default=list(STRENGTHS), help="candidate strengths, comma-separated")
    parser.add_argument("--seeds", type=_ints, default=[10, 11], help="seeds, not the table's (default 10,11)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (default 2)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/navigation_strength"), help="parent of the runs")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "navigation_strength")
    args = parser.parse_args(argv)
    runs = measure(args.preset, args.strengths, args.seeds, args.jobs, args.runs_dir)
    means, threshold, chosen = choose(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    runs.drop(columns="run_dir").to_csv(args.out / "strengths.csv", index=False)
    lines = [
        f"Dense navigation, preset {args.preset}, seeds {','.join(map(str, args.seeds))}: validation decoding error (cm).",
        f"Rule: the largest torus-DoG strength within {TOLERANCE:.0%} of no regulariser "
        f"(threshold {threshold:.2f} cm). Chosen: {chosen if chosen is not None else 'none qualifies'}.",
        "",
        "| regulariser | strength | mean error (cm) | std | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in means.sort_values(["regularizer", "strength"], ascending=[False, False]).itertuples():
        lines.append(f"| {row.regularizer} | {row.strength:g} | {row.mean:.2f} | {row.std:.2f} | {row.count} |")
    text = "\n".join(lines) + "\n"
    (args.out / "strengths.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
