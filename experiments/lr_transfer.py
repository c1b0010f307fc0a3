"""Learning-rate transfer across width, with and without modular normalisation.

Modula's claim: when every update is normalised in the modular norm, the best learning rate stays
put as the network widens, while plain Adam/SGD optima drift with width. This script measures it on

- ``mlp``: ``MLP(10, 64, width, depth=3)`` on scikit-learn's 8x8 digits (1438 train / 359 held-out
  images, features standardised), cross-entropy, minibatches of a seeded permutation;
- ``rnn``: ``Linear(1, H) @ LastState() @ ElmanRNN(H, 2)`` (ReLU, no bias) on the adding problem,
  MSE, a fresh seeded batch per step;

each with four optimisers: ``adam`` / ``sgd`` (torch's Adam and SGD with momentum 0.9, no
normalisation) and their modular versions ``ModularAdam`` / ``ModularSGD`` (same direction, rescaled
to modular norm ``lr``). The learning rate decays linearly to 0 over the run. For one seed, every
setting and learning rate sees the same initial weights and the same data order.

Loss reported (``final_loss``): after the last step, the mean loss over the whole training set
(mlp) or over a fixed evaluation batch (rnn); ``heldout_loss`` is the held-out images' loss (mlp) and
a second independent batch (rnn). A run is *diverged* when a training loss turns non-finite or
exceeds ``DIVERGENCE_FACTOR`` times the initial loss (training stops there); its ``final_loss`` is
recorded as ``+inf``, so it is never the best learning rate. With several seeds the loss of a
(setting, width, lr) is the mean over seeds (``+inf`` if any seed diverged).

Outputs under ``--out``: ``lr_transfer.csv`` (one row per run), ``lr_transfer.png`` / ``.pdf``
(loss vs lr, one line per width, one facet per model x setting) and ``ratios.md`` (best lr at the
smallest and largest width and their ratio, largest / smallest; 1.0 is perfect transfer).

Usage: ``python experiments/lr_transfer.py [--quick] [--out DIR] [--seeds 0 1 ...]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from modula_core.abstract import Bond, Module  # noqa: E402
from modula_core.atom import Linear  # noqa: E402
from modula_core.compound import MLP  # noqa: E402
from modula_core.optim import ModularAdam, ModularSGD  # noqa: E402
from modula_core.recurrent import ElmanRNN  # noqa: E402
from modula_core.vector import Vector  # noqa: E402
from moduli.tasks import BASELINE_MSE, AddingProblem  # noqa: E402

MODELS: tuple[str, ...] = ("mlp", "rnn")
OPTIMISERS: tuple[str, ...] = ("adam", "sgd")
SETTINGS: tuple[tuple[str, bool], ...] = (("adam", False), ("adam", True), ("sgd", False), ("sgd", True))
MOMENTUM: float = 0.9  # SGD momentum, with and without normalisation
DIVERGENCE_FACTOR: float = 10.0  # a training loss above this many times the initial loss counts as diverged
CSV_NAME, RATIOS_NAME, FIGURE_STEM = "lr_transfer.csv", "ratios.md", "lr_transfer"
CSV_COLUMNS: tuple[str, ...] = (
    "model", "optimiser", "normalised", "setting", "width", "lr", "seed",
    "final_loss", "heldout_loss", "initial_loss", "diverged", "steps_run", "seconds",
)


def setting_name(optimiser: str, normalised: bool) -> str:
    """``"adam"``, ``"adam+modular"``, ``"sgd"`` or ``"sgd+modular"``."""
    return f"{optimiser}+modular" if normalised else optimiser


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep. Learning-rate grids are powers of two, ``(lo, hi)`` exponents inclusive."""

    models: tuple[str, ...] = MODELS  # which models to run
    mlp_widths: tuple[int, ...] = (64, 128, 256, 512, 1024)  # hidden widths of the MLP
    rnn_widths: tuple[int, ...] = (32, 64, 128, 256, 512)  # hidden sizes H of the RNN
    # log2 learning-rate range per (model, setting name)
    lr_exponents: dict[tuple[str, str], tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_EXPONENTS))
    mlp_steps: int = 100  # optimiser steps per MLP run
    mlp_batch: int = 128  # MLP minibatch size
    rnn_steps: int = 150  # optimiser steps per RNN run
    rnn_batch: int = 64  # RNN batch size
    seq_len: int = 20  # adding-problem sequence length T
    eval_batch: int = 1024  # RNN evaluation batch size
    seeds: tuple[int, ...] = (0,)  # seeds (initial weights and data order)
    device: str = "cpu"  # torch device for models and data

    def lrs(self, model: str, setting: str) -> list[float]:
        """The learning-rate grid of one (model, setting): ``2**k`` for k in the exponent range."""
        lo, hi = self.lr_exponents[(model, setting)]
        return [2.0**k for k in range(lo, hi + 1)]

    def widths(self, model: str) -> tuple[int, ...]:
        return self.mlp_widths if model == "mlp" else self.rnn_widths


# Chosen from a coarse scouting sweep so that each optimum sits inside its grid at every width.
DEFAULT_EXPONENTS: dict[tuple[str, str], tuple[int, int]] = {
    ("mlp", "adam"): (-12, -3),
    ("mlp", "adam+modular"): (-6, 2),
    ("mlp", "sgd"): (-7, 1),
    ("mlp", "sgd+modular"): (-6, 2),
    ("rnn", "adam"): (-15, -6),
    ("rnn", "adam+modular"): (-4, 4),
    ("rnn", "sgd"): (-14, -4),
    ("rnn", "sgd+modular"): (-4, 4),
}


def default_config(quick: bool = False, seeds: Sequence[int] = (0,), device: str = "cpu") -> SweepConfig:
    """The full sweep, or with ``quick`` a tiny one (2 widths, 3 learning rates, a few steps)."""
    cfg = SweepConfig(seeds=tuple(seeds), device=device)
    if quick:
        cfg = replace(
            cfg,
            mlp_widths=(16, 32),
            rnn_widths=(8, 16),
            lr_exponents={key: (lo + (hi - lo) // 2 - 1, lo + (hi - lo) // 2 + 1) for key, (lo, hi) in DEFAULT_EXPONENTS.items()},
            mlp_steps=8,
            mlp_batch=32,
            rnn_steps=8,
            rnn_batch=16,
            seq_len=5,
            eval_batch=64,
        )
    return cfg


# --------------------------------------------------------------------------- models and data
class LastState(Bond):
    """``(T, B, H) -> (B, H)``: the last hidden state of a sequence of states. Sensitivity 1."""

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ValueError(f"LastState takes a (T, B, H) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        return x[-1]


def build_model(model: str, width: int) -> Module:
    """mlp: digits (B, 64) -> logits (B, 10); rnn: adding inputs (T, B, 2) -> prediction (B, 1)."""
    if model == "mlp":
        return MLP(10, 64, width, 3)
    if model == "rnn":
        return Linear(1, width) @ LastState() @ ElmanRNN(width, 2, nonlinearity="relu", bias=False)
    raise ValueError(f"unknown model {model!r}; choose one of {MODELS}")


@dataclass
class DigitsData:
    """Standardised 8x8 digits: features (N, 64) float32, labels (N,) int64."""

    x_train: Tensor  # (1438, 64) training features, zero mean and unit variance per pixel
    y_train: Tensor  # (1438,) training labels 0..9
    x_test: Tensor  # (359, 64) held-out features, standardised with the training statistics
    y_test: Tensor  # (359,) held-out labels


def load_digits_data(device: str = "cpu") -> DigitsData:
    """scikit-learn's digits, split 80/20 with a fixed permutation (seed 0), standardised."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the mlp sweep needs scikit-learn (pip install scikit-learn) for load_digits") from exc
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_train = int(round(0.8 * len(x)))
    tr, te = perm[:n_train], perm[n_train:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant border pixels stay 0
    x = (x - mean) / std
    return DigitsData(x[tr].to(device), y[tr].to(device), x[te].to(device), y[te].to(device))


def _make_optimiser(optimiser: str, normalised: bool, weights: Vector, module: Module, lr: float) -> torch.optim.Optimizer:
    params = list(weights)
    if optimiser == "adam":
        return ModularAdam(params, module, lr) if normalised else torch.optim.Adam(params, lr=lr)
    if optimiser == "sgd":
        return ModularSGD(params, module, lr, momentum=MOMENTUM) if normalised else torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
    raise ValueError(f"unknown optimiser {optimiser!r}; choose one of {OPTIMISERS}")


@dataclass
class RunResult:
    """Outcome of one training run."""

    final_loss: float  # training-set (mlp) / evaluation-batch (rnn) loss after the last step; inf if diverged
    heldout_loss: float  # held-out loss after the last step; inf if diverged
    initial_loss: float  # the same loss as final_loss, before the first step
    diverged: bool  # a training loss was non-finite or above DIVERGENCE_FACTOR * initial loss
    steps_run: int  # optimiser steps taken (fewer than planned when diverged)


def train_run(
    model: str,
    width: int,
    optimiser: str,
    normalised: bool,
    lr: float,
    seed: int,
    cfg: SweepConfig,
    digits: DigitsData | None = None,
) -> RunResult:
    """Train one model with one optimiser at one learning rate; losses are per-example means."""
    device = torch.device(cfg.device)
    module = build_model(model, width)
    # Weights are drawn on the CPU with a seeded generator, so every device starts from the same point.
    weights = module.initialize(generator=torch.Generator().manual_seed(seed)).to(device)
    data_gen = torch.Generator().manual_seed(1_000_003 + seed)

    if model == "mlp":
        if digits is None:
            raise ValueError("the mlp model needs digits=load_digits_data(...)")
        n = len(digits.x_train)
        order: list[Tensor] = []

        def batch() -> tuple[Tensor, Tensor]:
            nonlocal order
            if not order:
                perm = torch.randperm(n, generator=data_gen).to(device)
                order = list(perm.split(cfg.mlp_batch))
                if len(order) > 1 and len(order[-1]) < cfg.mlp_batch:
                    order.pop()  # keep the batch size fixed
            idx = order.pop(0)
            return digits.x_train[idx], digits.y_train[idx]

        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
        evals = [(digits.x_train, digits.y_train), (digits.x_test, digits.y_test)]
        steps = cfg.mlp_steps
    else:
        task = AddingProblem(cfg.seq_len)
        eval_gen = torch.Generator().manual_seed(2_000_003)  # the same evaluation batches for every run

        def batch() -> tuple[Tensor, Tensor]:
            x, y = task.sample(cfg.rnn_batch, generator=data_gen)
            return x.to(device), y.to(device)

        loss_fn = F.mse_loss
        evals = [tuple(t.to(device) for t in task.sample(cfg.eval_batch, generator=eval_gen)) for _ in range(2)]
        steps = cfg.rnn_steps

    def evaluate() -> list[float]:
        with torch.no_grad():
            return [float(loss_fn(module(x, weights), y)) for x, y in evals]

    initial_loss = evaluate()[0]
    opt = _make_optimiser(optimiser, normalised, weights, module, lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - k / steps)
    limit = DIVERGENCE_FACTOR * initial_loss
    for step in range(steps):
        x, y = batch()
        loss = loss_fn(module(x, weights), y)
        value = loss.item()
        if not math.isfinite(value) or value > limit:
            return RunResult(math.inf, math.inf, initial_loss, True, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    final, heldout = evaluate()
    if not math.isfinite(final) or final > limit:
        return RunResult(math.inf, math.inf, initial_loss, True, steps)
    return RunResult(final, heldout, initial_loss, False, steps)


# --------------------------------------------------------------------------- sweep and analysis
def sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every (model, setting, width, lr, seed); one row per run with the ``CSV_COLUMNS``."""
    digits = load_digits_data(cfg.device) if "mlp" in cfg.models else None
    rows = []
    for model in cfg.models:
        for width in cfg.widths(model):
            start_width = time.perf_counter()
            for optimiser, normalised in SETTINGS:
                setting = setting_name(optimiser, normalised)
                for lr in cfg.lrs(model, setting):
                    for seed in cfg.seeds:
                        t0 = time.perf_counter()
                        res = train_run(model, width, optimiser, normalised, lr, seed, cfg, digits)
                        rows.append(
                            dict(
                                model=model, optimiser=optimiser, normalised=normalised, setting=setting,
                                width=width, lr=lr, seed=seed, final_loss=res.final_loss,
                                heldout_loss=res.heldout_loss, initial_loss=res.initial_loss,
                                diverged=res.diverged, steps_run=res.steps_run,
                                seconds=round(time.perf_counter() - t0, 3),
                            )
                        )
            log(f"{model} width {width}: {time.perf_counter() - start_width:.1f} s")
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def best_lrs(df: pd.DataFrame) -> pd.DataFrame:
    """Best learning rate per (model, setting, width): argmin of the seed-mean final loss.

    Diverged runs have loss +inf, so they are never chosen; a width where every lr diverged gets
    ``best_lr = NaN``. Ties go to the smaller learning rate.
    """
    mean = df.groupby(["model", "setting", "width", "lr"], sort=True)["final_loss"].mean().reset_index()
    out = []
    for (model, setting, width), g in mean.groupby(["model", "setting", "width"], sort=True):
        finite = g[np.isfinite(g["final_loss"])]
        if finite.empty:
            best_lr, best_loss = math.nan, math.inf
        else:
            row = finite.sort_values(["final_loss", "lr"]).iloc[0]
            best_lr, best_loss = float(row["lr"]), float(row["final_loss"])
        out.append(dict(model=model, setting=setting, width=int(width), best_lr=best_lr, best_loss=best_loss))
    return pd.DataFrame(out)


def transfer_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, setting): best lr at the smallest and largest width, their ratio
    (largest / smallest; 1.0 = perfect transfer), the losses at those optima and the best lr at every width."""
    best = best_lrs(df)
    order = {s: i for i, s in enumerate(setting_name(o, n) for o, n in SETTINGS)}
    rows = []
    for (model, setting), g in best.groupby(["model", "setting"], sort=False):
        g = g.sort_values("width")
        small, large = g.iloc[0], g.iloc[-1]
        rows.append(
            dict(
                model=model, setting=setting,
                smallest_width=int(small["width"]), largest_width=int(large["width"]),
                best_lr_smallest=float(small["best_lr"]), best_lr_largest=float(large["best_lr"]),
                ratio=float(large["best_lr"]) / float(small["best_lr"]),
                best_loss_smallest=float(small["best_loss"]), best_loss_largest=float(large["best_loss"]),
                best_lr_by_width=" ".join(_lr_text(v) for v in g["best_lr"]),
            )
        )
    out = pd.DataFrame(rows)
    out["_order"] = [(MODELS.index(m), order[s]) for m, s in zip(out["model"], out["setting"])]
    return out.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def _lr_text(lr: float) -> str:
    return "nan" if not math.isfinite(lr) else f"2^{math.log2(lr):.0f}"


def ratios_markdown(ratios: pd.DataFrame) -> str:
    """The ratio table as Markdown (learning rates as powers of two and decimals)."""
    lines = [
        "| model | setting | best lr @ smallest width | best lr @ largest width | ratio (largest / smallest) "
        "| best loss @ smallest / largest | best lr per width (small to large) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ratios.itertuples():
        lines.append(
            f"| {r.model} | {r.setting} | {_lr_text(r.best_lr_smallest)} = {r.best_lr_smallest:.6g} (w={r.smallest_width}) "
            f"| {_lr_text(r.best_lr_largest)} = {r.best_lr_largest:.6g} (w={r.largest_width}) | {r.ratio:.6g} "
            f"| {r.best_loss_smallest:.3g} / {r.best_loss_largest:.3g} | {r.best_lr_by_width} |"
        )
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Loss vs lr (log2 axis), one line per width, a facet per model x setting; PNG and PDF paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    mean = df.groupby(["model", "setting", "width", "lr"], sort=True)["final_loss"].mean().reset_index()
    # Diverged runs (inf) are left out of the lines: a gap at the right end of a curve.
    mean = mean[np.isfinite(mean["final_loss"])]
    settings = [setting_name(o, n) for o, n in SETTINGS]
    models = [m for m in MODELS if m in set(df["model"])]
    fig, axes = plt.subplots(len(models), len(settings), figsize=(4 * len(settings), 3.2 * len(models)), squeeze=False)
    for i, model in enumerate(models):
        widths = sorted(df.loc[df["model"] == model, "width"].unique())
        palette = dict(zip(widths, sns.color_palette("viridis", len(widths))))
        for j, setting in enumerate(settings):
            ax = axes[i][j]
            g = mean[(mean["model"] == model) & (mean["setting"] == setting)]
            if not g.empty:
                sns.lineplot(data=g, x="lr", y="final_loss", hue="width", palette=palette, marker="o", ax=ax, legend=(j == len(settings) - 1))
            if model == "rnn":
                ax.axhline(BASELINE_MSE, color="grey", linestyle="--", linewidth=1, label="predict 1 (MSE 1/6)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{model} / {setting}")
            ax.set_xlabel("learning rate")
            ax.set_ylabel("final train loss (CE)" if model == "mlp" else "final MSE (dashed: predict 1)")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{FIGURE_STEM}.png", out_dir / f"{FIGURE_STEM}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- entry points
def run(
    out_dir: str | Path,
    quick: bool = False,
    seeds: Sequence[int] = (0,),
    models: Sequence[str] = MODELS,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sweep, write CSV / figures / ratios.md into ``out_dir``, print the ratios; returns (runs, ratios)."""
    if not isinstance(out_dir, (str, Path)):
        raise TypeError(f"out_dir must be a path (str or Path), got {type(out_dir).__name__}")
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r}")
    models = tuple(models)
    if not models or any(m not in MODELS for m in models) or len(set(models)) != len(models):
        raise ValueError(f"models must be distinct names from {MODELS}, got {models!r}")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device string such as 'cpu' or 'cuda', got {device!r}") from exc
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a directory; pass a directory path")

    cfg = replace(default_config(quick, seeds, device), models=models)
    t0 = time.perf_counter()
    df = sweep(cfg, log)
    elapsed = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / CSV_NAME, index=False)
    ratios = transfer_ratios(df)
    table = ratios_markdown(ratios)
    header = (
        "# Learning-rate transfer across width\n\n"
        f"Best learning rate (argmin of the final loss over a power-of-two grid; diverged runs count as +inf) "
        f"at the smallest and largest width. Seeds {list(seeds)}; steps: mlp {cfg.mlp_steps}, rnn {cfg.rnn_steps}; "
        f"sweep time {elapsed:.0f} s.\n\n"
    )
    (out / RATIOS_NAME).write_text(header + table)
    plot(df, out)
    log(table)
    log(f"sweep: {len(df)} runs in {elapsed:.1f} s; outputs in {out}")
    return df, ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny widths, grid and step count (seconds)")
    parser.add_argument("--out", default=str(REPO_ROOT / "experiments" / "results" / "lr_transfer"), help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (mean loss over seeds)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to sweep")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    run(args.out, quick=args.quick, seeds=args.seeds, models=args.models, device=args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
