"""Do learned neuron positions move? The adding table's learned R^3 run, measured.

Trains the cell ``learned_r3`` / 95% magnitude / seed ``--seed`` of ``moduli reproduce adding
--preset <preset>`` (the table's exact config; ``--set key=value`` changes it, e.g.
``--set regularizer.embedding_optimizer=riemannian_adam``) and compares its neuron positions
before training, at the end of the pruning ramp and after the stabilising epochs. Prints one
Markdown table:

- displacement of each neuron (Euclidean, in the space's units): median and maximum, and the
  median relative to the spread of the start (the root-mean-square distance of the start
  positions from their centroid, per coordinate);
- the share of neuron pairs within the DoG's range, d < 4.91, where the plain DoG
  ``100 (exp(-d^2/5) - exp(-4 d^2))`` is above 1% of its peak: pairs beyond it barely feel
  the penalty's pull;
- the median distance to the nearest other neuron.

Usage (about a minute per run at the cpu preset on one CPU thread):
``python experiments/embedding_motion.py [--preset cpu] [--seed 0] [--set key=value ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from moduli.config import load_config
from moduli.inhibitors import DoG
from moduli.reproduce.cells import build_cells
from moduli.reproduce.presets import load_preset
from moduli.reproduce.tables import table_spec
from moduli.run_dir import RunDir
from moduli.training import Trainer

RUN_SET, COLUMN = "learned_r3", "magnitude@0.95"


def dog_range(fraction: float = 0.01) -> float:
    """Smallest distance beyond the peak where the plain DoG falls below ``fraction`` of its peak."""
    dog = DoG()
    d = torch.linspace(dog.peak_distance, 20.0, 200_001, dtype=torch.float64)
    below = dog.plain(d) < fraction * dog.peak_value
    return float(d[below.nonzero()[0, 0]])


def cell_config(preset: str, seed: int, overrides: list[str], out_dir: Path):
    """The table's config of the learned R^3 cell at 95% magnitude pruning, stored under ``out_dir``."""
    spec, chosen = table_spec("adding"), load_preset("adding", preset)
    groups, cells = build_cells(spec, chosen, out_dir, check_hardware=False)
    cell = next(c for c in cells if (c.run_set, c.column, c.seed) == (RUN_SET, COLUMN, chosen.seeds[0]))
    group = groups[cell.group]
    return load_config(list(group.paths), list(cell.overrides) + [f"train.seed={seed}"] + overrides)


def statistics(start: torch.Tensor, points: torch.Tensor, reach: float) -> dict[str, float]:
    """Displacement from ``start`` and pair statistics of ``points`` ((N, 3) each); ``reach``: the DoG's range."""
    spread = float((start - start.mean(0)).pow(2).sum(1).mean().div(start.shape[1]).sqrt())
    moved = (points - start).norm(dim=1)
    d = torch.cdist(points.double(), points.double())
    n = d.shape[0]
    off = d[~torch.eye(n, dtype=torch.bool)]
    nearest = (d + torch.diag(torch.full((n,), float("inf"), dtype=d.dtype))).min(1).values
    return {
        "median displacement": float(moved.median()),
        "max displacement": float(moved.max()),
        "median displacement / spread": float(moved.median()) / spread,
        "pairs within DoG range": float((off < reach).double().mean()),
        "median nearest-neighbour distance": float(nearest.median()),
        "spread": spread,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", help="adding preset: smoke, cpu or paper (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = cell_config(args.preset, args.seed, args.overrides, Path(tmp))
        trainer = Trainer(cfg, RunDir.create(cfg), quiet=True)
        start = trainer.model.rnn.regularizers[0].embedding.detach().clone()
        summary = trainer.run()
        snapshots = sorted((RunDir.path_for(cfg) / "embeddings").glob("epoch_*.pt"))
        ramp_end = torch.load(snapshots[cfg.train.epochs - 1], weights_only=True)["0"]
        final = trainer.model.rnn.regularizers[0].embedding.detach()
    reg, reach = cfg.regularizer, dog_range()
    print(
        f"adding / preset {args.preset}, {RUN_SET}, {COLUMN}, seed {args.seed}: {cfg.train.epochs} + "
        f"{cfg.train.stabilise_epochs} epochs x {cfg.train.steps_per_epoch} steps, {cfg.optim.name} lr {cfg.optim.lr:g}, "
        f"positions: {reg.embedding_optimizer}, start {reg.embedding_init_scale:g} x N(0, 1), "
        f"gradient x {reg.embedding_grad_decay:g}^epoch; final MSE {summary['value']:.4f}; "
        f"DoG range d < {reach:.2f}\n"
    )
    rows = {name: statistics(start, points, reach) for name, points in
            (("start", start), ("end of ramp", ramp_end), ("final", final))}
    keys = list(rows["start"])
    print("| positions | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(f"{values[k]:.4g}" for k in keys) + " |")


if __name__ == "__main__":
    main()
