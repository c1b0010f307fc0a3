"""Are the surviving recurrent connections of a pruned table's models local on their manifold?

    python experiments/navigation_locality.py [--results experiments/results/navigation/cpu] [--column magnitude@0.9]

For every finished run of ``--column`` in a table's ``runs.csv`` whose regulariser places the
neurons on a manifold, loads the run's final checkpoint (the run directories must be present, as
``moduli reproduce`` leaves them) and compares the geodesic distances d(i, j) of the kept
connections of W_hh (w_ij != 0, i != j) with those of all pairs: their mean ratio (1 = no locality)
and the share of kept connections closer than the inhibitor's zero ring (d < 2) against the share
of all pairs there. For the permuted DoG the distances are those of the embedding it was drawn
with, whose coefficients it shuffled: its ratio shows what "no geometry" looks like. Writes
``locality.csv`` and ``locality.md`` next to ``runs.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from moduli.run_dir import RunDir  # noqa: E402
from moduli.tasks.registry import build_task  # noqa: E402
from moduli.training.builders import regularizer_factory  # noqa: E402

NEAR = 2.0  # distance below which the inverted DoG is near its zero ring (its minimum is at d = 0.89)


def locality(run_path: Path) -> dict[str, float] | None:
    """Locality statistics of W_hh of one run, or None when its regulariser has no manifold."""
    run = RunDir.open(run_path)
    cfg = run.config
    if cfg.regularizer.kind != "moduli":
        return None
    seed = cfg.train.effective_seed
    task = build_task(cfg, torch.device("cpu"), seed, regularizer_factory(cfg.regularizer, seed))
    state = torch.load(run_path / "checkpoints" / "last.pt", weights_only=True)["state"]
    task.model.load_state_dict(state["model"])
    weight = task.model.rnn.weight_hh_l0.detach()
    distances = task.model.rnn.regularizers[0].distances().detach()
    off = ~torch.eye(weight.shape[0], dtype=torch.bool)
    kept = (weight != 0) & off
    return {
        "kept_share": float(kept.sum() / off.sum()),
        "distance_ratio": float(distances[kept].mean() / distances[off].mean()),
        "near_kept": float((distances[kept] < NEAR).float().mean()),
        "near_all": float((distances[off] < NEAR).float().mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "experiments" / "results" / "navigation" / "cpu")
    parser.add_argument("--column", default="magnitude@0.9", help="table column (default magnitude@0.9)")
    parser.add_argument("--runs-root", type=Path, default=Path("."), help="directory the run_dir paths are relative to")
    args = parser.parse_args(argv)
    runs = pd.read_csv(args.results / "runs.csv")
    # the lottery rows retrain under the mask with a fresh embedding: the mask's locality is the torus DoG row's
    runs = runs[(runs["column"] == args.column) & (runs["status"] == "finished") & (runs["reading"] == "final")]
    runs = runs[runs["row"] != "lottery"]
    rows = []
    for run in runs.drop_duplicates("run_dir").itertuples():
        stats = locality(args.runs_root / run.run_dir)
        if stats is not None:
            rows.append({"row": run.row, "seed": run.seed, "error_cm": run.value, **stats})
    table = pd.DataFrame(rows)
    table.to_csv(args.results / "locality.csv", index=False)
    means = table.groupby("row", sort=False).mean(numeric_only=True)
    lines = [
        f"Locality of the kept W_hh connections, column {args.column} of {args.results} (mean over seeds): "
        f"mean geodesic distance of kept connections / of all pairs (1 = no locality), and the share of "
        f"kept connections and of all pairs closer than d = {NEAR:g}.",
        "",
        "| row | error (cm) | kept share | distance ratio | kept with d < 2 | all pairs with d < 2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row, m in means.iterrows():
        lines.append(
            f"| {row} | {m['error_cm']:.1f} | {m['kept_share']:.1%} | {m['distance_ratio']:.2f} | "
            f"{m['near_kept']:.1%} | {m['near_all']:.1%} |"
        )
    text = "\n".join(lines) + "\n"
    (args.results / "locality.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
