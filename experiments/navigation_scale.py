"""Navigation learning curves at CPU scale: which recipe makes path integration learn.

Dense, unregularised navigation runs (``regularizer.kind=none``, ``pruning.method=none``) for a
grid of recipes, each trained for several seeds:

- place-cell tuning of targets and start state (``navigation.place_cell_tuning``): dog (the paper)
  or gaussian;
- W_hh initialisation (``model.recurrent_init``): default (torch's), identity, he_uniform, orthogonal;
- velocity input (``navigation.velocity_units``): per_step (the paper) or per_second;
- optimiser and learning rate (``optim.name``, ``optim.lr``, written ``name@lr``): Adam, and the
  project's ``modular_adam``, whose learning rate is the modular norm of each update (another
  scale than Adam's, hence its own small grid). No weight decay, no gradient clipping.

Every run is an ordinary run directory under ``--runs-dir``, trained through
:func:`moduli.sweep.run_sweep` (``--jobs`` parallel processes; an interrupted study resumes its
runs, finished runs are read back). The validation decoding error is logged every
``--eval-every`` steps (one epoch = ``--eval-every`` steps). Written to ``--out``:

- ``curves.csv``: one row per recipe, seed and evaluation (validation error in cm and loss);
- ``references.csv``: per tuning and seed, the errors of decoding the start position at every
  step, of always answering the box centre and of decoding the true place-cell code, on the
  same evaluation trajectories (:func:`moduli.tasks.navigation_baselines`);
- ``summary.md``: the final error of each recipe (mean and sd over seeds) and its seconds per
  100 training steps (evaluations included), best first;
- ``navigation_scale.png`` / ``.pdf``: error against step, one panel per optimiser setting (rows)
  and tuning / velocity units (columns), a line per initialisation, the band spanning the seeds,
  the three references as horizontal lines.

Usage::

    python experiments/navigation_scale.py --list                     # the recipes, nothing runs
    python experiments/navigation_scale.py --jobs 2                   # the whole grid
    python experiments/navigation_scale.py --grid tuning=gaussian --grid init=identity,default \\
        --recipes '*-per_second-*' --steps 700 --jobs 2              # a subset
    python experiments/navigation_scale.py --quick                    # tiny sizes, seconds
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from moduli.config import PLACE_CELL_TUNINGS, RECURRENT_INITS, RunConfig, load_config
from moduli.config.schema import OptimConfig
from moduli.errors import ConfigError
from moduli.reproduce.presets import PROJECT_ROOT
from moduli.run_dir import RunDir
from moduli.sweep import format_override_value, parse_seeds, run_sweep
from moduli.tasks import navigation_baselines

CONFIGS = tuple(
    PROJECT_ROOT / "configs" / name
    for name in ("navigation.yaml", "regularizer/none.yaml", "pruning/none.yaml")
)
OUT = PROJECT_ROOT / "experiments" / "results" / "navigation_scale"
RUNS = PROJECT_ROOT / "runs" / "navigation_scale"
QUICK_DIR = PROJECT_ROOT / "runs" / "navigation_scale_quick"
FIGURE = "navigation_scale"
VELOCITY_UNITS: tuple[str, ...] = ("per_step", "per_second")
OPTIMISERS: tuple[str, ...] = OptimConfig.__dataclass_fields__["name"].metadata["choices"]

# The grid run by default: 2 x 4 x 2 x 5 = 80 recipes. modular_adam's learning rates bracket 1, the
# best of 0.01, 0.05, 0.2, 0.5, 1 and 3 in 200-300-step probes (gaussian cells, identity W_hh,
# velocity per second, hidden 256, seed 0); Adam's are the 1e-3 and 3e-3.
DEFAULT_GRID: dict[str, tuple[str, ...]] = {
    "tuning": ("dog", "gaussian"),
    "init": ("default", "identity", "he_uniform", "orthogonal"),
    "velocity": ("per_step", "per_second"),
    "optim": ("adam@1e-3", "adam@3e-3", "modular_adam@0.3", "modular_adam@1", "modular_adam@3"),
}
QUICK_RECIPES: tuple[str, ...] = ("gaussian-identity-per_second-adam@0.003", "dog-default-per_step-modular_adam@1")
# Keys the grid, the sizes or the study itself set: --set may not change them.
RESERVED_KEYS: tuple[str, ...] = (
    "task", "out_dir", "train.seed", "regularizer.kind", "pruning.method", "optim.name", "optim.lr",
    "navigation.place_cell_tuning", "navigation.velocity_units", "model.recurrent_init",
    "model.hidden_size", "navigation.num_place_cells", "navigation.seq_len", "train.batch_size",
    "train.epochs", "train.steps_per_epoch", "train.log_every", "train.device", "navigation.eval_batches",
    "navigation.eval_batch_size", "optim.weight_decay", "optim.grad_clip",
)
CURVE_COLUMNS: tuple[str, ...] = (
    "recipe", "tuning", "init", "velocity", "optimiser", "lr", "seed", "step", "error_cm", "loss", "status", "run_dir",
)
REFERENCES: dict[str, str] = {  # column -> legend label
    "start": "decode the start position",
    "centre": "always the box centre",
    "true": "decode the true place-cell code",
}


@dataclass(frozen=True)
class Scale:
    """Sizes and budget of every run of the study."""

    hidden: int = 256  # hidden neurons N
    place_cells: int = 256  # place cells P
    seq_len: int = 20  # steps per trajectory T
    batch: int = 64  # training trajectories per step
    steps: int = 1500  # optimiser steps per run
    eval_every: int = 100  # steps between validation evaluations
    eval_batch_size: int = 200  # validation trajectories (one batch)

    def overrides(self) -> list[str]:
        if self.steps % self.eval_every:
            raise ConfigError(
                f"config error: --steps {self.steps} is not a multiple of --eval-every {self.eval_every}; "
                "choose steps = k * eval_every"
            )
        return [
            f"model.hidden_size={self.hidden}", f"navigation.num_place_cells={self.place_cells}",
            f"navigation.seq_len={self.seq_len}", f"train.batch_size={self.batch}",
            f"train.epochs={self.steps // self.eval_every}", f"train.steps_per_epoch={self.eval_every}",
            f"train.log_every={self.eval_every}", "navigation.eval_batches=1",
            f"navigation.eval_batch_size={self.eval_batch_size}",
        ]


QUICK_SCALE = Scale(hidden=16, place_cells=32, seq_len=5, batch=8, steps=20, eval_every=10, eval_batch_size=16)


@dataclass(frozen=True)
class Recipe:
    """One cell of the grid."""

    tuning: str  # navigation.place_cell_tuning
    init: str  # model.recurrent_init
    velocity: str  # navigation.velocity_units
    optimiser: str  # optim.name
    lr: float  # optim.lr

    @property
    def name(self) -> str:
        return f"{self.tuning}-{self.init}-{self.velocity}-{self.optimiser}@{self.lr:g}"

    def settings(self) -> dict[str, str | float]:
        """The config keys the grid varies -> this recipe's values."""
        return {
            "navigation.place_cell_tuning": self.tuning, "model.recurrent_init": self.init,
            "navigation.velocity_units": self.velocity, "optim.lr": self.lr,
        }

    def fixed(self) -> list[str]:
        """The overrides shared by every recipe of this optimiser: plain, no decay, no clipping."""
        return [f"optim.name={self.optimiser}", "optim.weight_decay=0.0", "optim.grad_clip=null"]

    def overrides(self) -> list[str]:
        return self.fixed() + [f"{key}={format_override_value(value)}" for key, value in self.settings().items()]


def parse_optim(text: str) -> tuple[str, float]:
    """``"adam@3e-3"`` -> ``("adam", 0.003)``."""
    name, sep, lr = text.partition("@")
    try:
        value = float(lr)
    except ValueError:
        value = float("nan")
    if not sep or name not in OPTIMISERS or not value > 0:
        raise ConfigError(
            f"config error: optim value {text!r} must be name@lr with a name in {', '.join(OPTIMISERS)} "
            "and lr > 0 (e.g. adam@3e-3)"
        )
    return name, value


def parse_grid(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``--grid axis=v1,v2`` items over :data:`DEFAULT_GRID` (an axis given replaces its values)."""
    allowed = {"tuning": PLACE_CELL_TUNINGS, "init": RECURRENT_INITS, "velocity": VELOCITY_UNITS}
    grid = dict(DEFAULT_GRID)
    for item in items:
        axis, sep, values = item.partition("=")
        chosen = tuple(v.strip() for v in values.split(","))
        if not sep or axis not in grid or not all(chosen):
            raise ConfigError(
                f"config error: --grid {item!r} must be axis=v1,v2 with an axis in {', '.join(grid)} "
                "(e.g. --grid init=identity,default)"
            )
        for value in chosen:
            if axis == "optim":
                parse_optim(value)
            elif value not in allowed[axis]:
                raise ConfigError(
                    f"config error: --grid {axis} value {value!r} is not allowed; allowed: {', '.join(allowed[axis])}"
                )
        grid[axis] = chosen
    return grid


def recipes_of(grid: dict[str, tuple[str, ...]], patterns: Sequence[str] = ()) -> list[Recipe]:
    """The grid's recipes (tuning slowest, optimiser fastest) whose names match one of
    ``patterns`` (fnmatch, e.g. ``gaussian-*-adam@*``; none: all)."""
    recipes = [
        Recipe(tuning, init, velocity, *parse_optim(optim))
        for tuning in grid["tuning"]
        for init in grid["init"]
        for velocity in grid["velocity"]
        for optim in grid["optim"]
    ]
    if patterns:
        recipes = [r for r in recipes if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]
        if not recipes:
            raise ConfigError(
                f"config error: --recipes {','.join(patterns)} matches no recipe of the grid; see --list"
            )
    return recipes


def check_extra(extra: Sequence[str]) -> list[str]:
    """``--set`` overrides, refused when they touch a key the study sets itself."""
    for item in extra:
        key = item.partition("=")[0].strip()
        if key in RESERVED_KEYS:
            raise ConfigError(
                f"config error: --set {item!r} changes {key}, which the study sets itself; "
                "use the size options or --grid instead"
            )
    return list(extra)


def base_overrides(scale: Scale, runs_dir: Path, extra: Sequence[str]) -> list[str]:
    return [f"out_dir={runs_dir}", "train.device=cpu", *scale.overrides(), *extra]


def run_config_of(recipe: Recipe, seed: int, base: Sequence[str]) -> RunConfig:
    return load_config(list(CONFIGS), [*base, *recipe.overrides(), f"train.seed={seed}"])


def sweep_calls(recipes: Sequence[Recipe]) -> list[tuple[list[str], dict[str, list], list[Recipe]]]:
    """(fixed overrides, grid, recipes) of the run_sweep calls that train ``recipes``: one call per
    optimiser when its recipes form a full grid (one process pool for all of them), else one per
    recipe group that differs only in the learning rate."""
    by_optimiser: dict[str, list[Recipe]] = {}
    for recipe in recipes:
        by_optimiser.setdefault(recipe.optimiser, []).append(recipe)
    calls = []
    for members in by_optimiser.values():
        grid = {key: list(dict.fromkeys(r.settings()[key] for r in members)) for key in members[0].settings()}
        if math.prod(len(values) for values in grid.values()) == len(members):
            calls.append((members[0].fixed(), grid, members))
            continue
        groups: dict[tuple[str, ...], list[Recipe]] = {}
        for recipe in members:
            groups.setdefault((recipe.tuning, recipe.init, recipe.velocity), []).append(recipe)
        for group in groups.values():
            grid = {key: [value] for key, value in group[0].settings().items()}
            grid["optim.lr"] = [r.lr for r in group]
            calls.append((group[0].fixed(), grid, group))
    return calls


def train(
    recipes: Sequence[Recipe],
    seeds: Sequence[int],
    base: Sequence[str],
    jobs: int,
    log: Callable[[str], None] = print,
) -> None:
    """Train (or resume, or read back) every recipe x seed through run_sweep, its cells spread
    over ``jobs`` processes."""
    calls = sweep_calls(recipes)
    for i, (fixed, grid, members) in enumerate(calls, 1):
        started = time.perf_counter()
        table = run_sweep(list(CONFIGS), grid, list(seeds), jobs=jobs, base_overrides=[*base, *fixed])
        failed = int((table["status"] != "finished").sum())
        names = members[0].name if len(members) == 1 else f"{len(members)} {members[0].optimiser} recipes"
        log(
            f"[{i}/{len(calls)}] {names}: {len(table)} runs in {time.perf_counter() - started:.0f} s"
            + (f", {failed} failed" if failed else "")
        )


def collect_curves(recipes: Sequence[Recipe], seeds: Sequence[int], base: Sequence[str]) -> pd.DataFrame:
    """The validation records of every run (columns :data:`CURVE_COLUMNS`), read from the run directories."""
    rows = []
    for recipe in recipes:
        for seed in seeds:
            cfg = run_config_of(recipe, seed, base)
            path = RunDir.path_for(cfg)
            if not path.is_dir():
                continue
            run = RunDir(path, cfg)
            status = run.status
            metrics = run.metrics()
            if metrics.empty or "split" not in metrics:
                continue
            for record in metrics[metrics["split"] == "valid"].itertuples():
                rows.append({
                    "recipe": recipe.name, "tuning": recipe.tuning, "init": recipe.init,
                    "velocity": recipe.velocity, "optimiser": recipe.optimiser, "lr": recipe.lr, "seed": seed,
                    "step": int(record.step), "error_cm": float(record.error_cm), "loss": float(record.loss),
                    "status": status, "run_dir": str(path),
                })
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def collect_references(recipes: Sequence[Recipe], seeds: Sequence[int], base: Sequence[str]) -> pd.DataFrame:
    """Per tuning and seed, the reference errors (cm) and cross-entropies on the evaluation trajectories."""
    rows = []
    for tuning in dict.fromkeys(r.tuning for r in recipes):
        recipe = next(r for r in recipes if r.tuning == tuning)
        for seed in seeds:
            refs = navigation_baselines(run_config_of(recipe, seed, base), seed=seed)
            rows.append({"tuning": tuning, "seed": seed, **refs})
    return pd.DataFrame(rows)


def run_times(recipes: Sequence[Recipe], seeds: Sequence[int], base: Sequence[str]) -> dict[str, float]:
    """Recipe name -> mean seconds per 100 training steps of its finished runs (evaluations included)."""
    times: dict[str, list[float]] = {}
    for recipe in recipes:
        for seed in seeds:
            cfg = run_config_of(recipe, seed, base)
            run = RunDir(RunDir.path_for(cfg), cfg)
            if run.summary_path.is_file():
                summary = run.summary()
                times.setdefault(recipe.name, []).append(100.0 * summary["wall_time_s"] / summary["steps"])
    return {name: sum(t) / len(t) for name, t in times.items()}


def summary_table(curves: pd.DataFrame, references: pd.DataFrame, times: dict[str, float], scale: Scale) -> str:
    """Markdown: final validation error per recipe (mean and sd over seeds), best first."""
    last = curves.sort_values("step").groupby(["recipe", "seed"]).tail(1)
    finished = last[last["status"] == "finished"]
    stats = finished.groupby("recipe")["error_cm"].agg(["mean", "std", "count"]).sort_values("mean")
    lines = [
        f"Dense, unregularised navigation: hidden {scale.hidden}, {scale.place_cells} place cells, T = {scale.seq_len}, "
        f"batch {scale.batch}, {scale.steps} steps; validation decoding error (cm) after the last step, mean (sd) "
        "over the finished seeds. Seconds per 100 steps include the evaluations.",
        "",
        "References (mean over seeds, cm): "
        + "; ".join(
            f"{tuning}: start {g['start'].mean():.1f}, centre {g['centre'].mean():.1f}, true code {g['true'].mean():.1f}"
            for tuning, g in references.groupby("tuning", sort=False)
        ),
        "",
        "| recipe | final error (cm) | seeds | s / 100 steps |",
        "|---|---:|---:|---:|",
    ]
    for name, row in stats.iterrows():
        sd = f" ({row['std']:.1f})" if row["count"] > 1 else ""
        pace = f"{times[name]:.1f}" if name in times else "n/a"
        lines.append(f"| {name} | {row['mean']:.1f}{sd} | {int(row['count'])} | {pace} |")
    failed = sorted(set(last.loc[last["status"] != "finished", "recipe"]))
    if failed:
        lines += ["", "Unfinished or failed runs (not in the table): " + ", ".join(failed)]
    return "\n".join(lines) + "\n"


def draw(curves: pd.DataFrame, references: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Error against step: rows = optimiser@lr, columns = tuning / velocity units, hue = W_hh init."""
    import seaborn as sns

    from moduli.figures._style import new_figure, save_figure, style

    data = curves.assign(
        optim=[f"{o}@{lr:g}" for o, lr in zip(curves["optimiser"], curves["lr"])],
        panel=[f"{t} cells, velocity {v}" for t, v in zip(curves["tuning"], curves["velocity"])],
    )
    rows, cols = list(dict.fromkeys(data["optim"])), list(dict.fromkeys(data["panel"]))
    inits = [i for i in RECURRENT_INITS if i in set(data["init"])]
    palette = dict(zip(inits, sns.color_palette("colorblind", len(inits))))
    refs = references.groupby("tuning")[list(REFERENCES)].mean()
    ref_style = {"start": ("0.35", "--"), "centre": ("0.1", ":"), "true": ("tab:green", "-.")}
    with style():
        width = max(3.6, 7.2 / len(cols))  # at least 7.2 inches in all: room for the legend
        fig, axes = new_figure(len(rows), len(cols), panel_size=(width, 2.6), sharex=True, sharey=True)
        for i, optim in enumerate(rows):
            for j, panel in enumerate(cols):
                ax = axes[i][j]
                subset = data[(data["optim"] == optim) & (data["panel"] == panel)]
                if not subset.empty:
                    sns.lineplot(
                        data=subset, x="step", y="error_cm", hue="init", hue_order=inits, palette=palette,
                        errorbar=("pi", 100), estimator="mean", ax=ax, legend=False,
                    )
                    tuning = subset["tuning"].iloc[0]
                    for key, (colour, dash) in ref_style.items():
                        ax.axhline(refs.loc[tuning, key], color=colour, linestyle=dash, linewidth=1)
                ax.set_yscale("log")
                ax.set_title(f"{optim}\n{panel}", fontsize=8)
                ax.set_xlabel("step" if i == len(rows) - 1 else "")
                ax.set_ylabel("validation error (cm)" if j == 0 else "")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=palette[i], label=f"W_hh {i}") for i in inits]
        handles += [Line2D([], [], color=c, linestyle=d, label=REFERENCES[k]) for k, (c, d) in ref_style.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 2 * len(cols), 4), fontsize=8)
        fig.suptitle("Dense navigation learning curves (mean over seeds, band: their range)", fontsize=9)
        return save_figure(fig, out_dir, FIGURE)


def run(
    recipes: Sequence[Recipe],
    seeds: Sequence[int],
    scale: Scale,
    out_dir: Path,
    runs_dir: Path,
    jobs: int = 1,
    extra: Sequence[str] = (),
    log: Callable[[str], None] = print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate every config, train what is not finished, write the CSVs, summary and figure."""
    base = base_overrides(scale, runs_dir, check_extra(extra))
    for recipe in recipes:  # every config is validated before anything runs
        for seed in seeds:
            run_config_of(recipe, seed, base)
    started = time.perf_counter()
    train(recipes, seeds, base, jobs, log)
    log(f"trained {len(recipes)} recipes x {len(seeds)} seeds in {time.perf_counter() - started:.0f} s")
    curves = collect_curves(recipes, seeds, base)
    references = collect_references(recipes, seeds, base)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves.to_csv(out_dir / "curves.csv", index=False)
    references.to_csv(out_dir / "references.csv", index=False)
    (out_dir / "summary.md").write_text(summary_table(curves, references, run_times(recipes, seeds, base), scale))
    if not curves.empty:
        draw(curves, references, out_dir)
    log(f"wrote {out_dir}/curves.csv, references.csv, summary.md, {FIGURE}.png/.pdf")
    return curves, references


def build_parser() -> argparse.ArgumentParser:
    default = Scale()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="axes of --grid: " + "; ".join(f"{k} (default {','.join(v)})" for k, v in DEFAULT_GRID.items()),
    )
    parser.add_argument("--grid", action="append", default=[], metavar="AXIS=V1,V2",
                        help="values of one axis of the grid (repeatable): tuning, init, velocity, optim (name@lr)")
    parser.add_argument("--recipes", default="", metavar="PATTERNS",
                        help="comma-separated name patterns (fnmatch) selecting recipes of the grid, e.g. 'gaussian-*'")
    parser.add_argument("--seeds", default="0,1", help="train.seed values, e.g. 0,1 or 0-2 (default 0,1)")
    sizes = {
        "hidden": "hidden neurons", "place_cells": "place cells", "seq_len": "steps per trajectory",
        "batch": "training trajectories per step", "steps": "optimiser steps per run",
        "eval_every": "steps between validation evaluations", "eval_batch_size": "validation trajectories",
    }
    for name, text in sizes.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=None,
            help=f"{text} (default {getattr(default, name)}; --quick: {getattr(QUICK_SCALE, name)})",
        )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="extra",
                        help="extra config override for every run, e.g. navigation.start_tuning=gaussian (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel training processes (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of runs trained in this process (default 1)")
    parser.add_argument("--out", type=Path, default=None, help=f"output directory (default {OUT.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help=f"parent of the run directories (default {RUNS.relative_to(PROJECT_ROOT)})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 20 steps, two recipes (unless --grid/--recipes say otherwise): a check in seconds")
    parser.add_argument("--list", action="store_true", help="print the selected recipes and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        grid = parse_grid(args.grid)
        patterns = [p.strip() for p in args.recipes.split(",") if p.strip()]
        if args.quick and not patterns and not args.grid:
            patterns = list(QUICK_RECIPES)
        recipes = recipes_of(grid, patterns)
        if args.list:
            print("\n".join(r.name for r in recipes) + f"\n{len(recipes)} recipes")
            return 0
        seeds = parse_seeds(args.seeds)
        given = {k: getattr(args, k) for k in Scale.__dataclass_fields__ if getattr(args, k) is not None}
        for name, value in {**given, "jobs": args.jobs, "threads": args.threads}.items():
            if value < 1:
                raise ConfigError(f"config error: --{name.replace('_', '-')} = {value} is out of range; allowed: >= 1")
        scale = replace(QUICK_SCALE if args.quick else Scale(), **given)
        out = args.out or (QUICK_DIR / "results" if args.quick else OUT)
        runs_dir = args.runs_dir or (QUICK_DIR / "runs" if args.quick else RUNS)
        import torch

        torch.set_num_threads(args.threads)
        run(recipes, seeds, scale, out, runs_dir, jobs=args.jobs, extra=args.extra)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
