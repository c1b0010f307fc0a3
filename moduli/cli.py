"""The ``moduli`` command line: ``train``, ``evaluate``, ``sweep``, ``reproduce`` and ``plot``.

Arguments that contain ``=`` are config overrides (``key=value``); the others are YAML config
files merged in order. User errors (bad configs, missing data or run directories, unusable
checkpoints) print one line ``error: ...`` on stderr and exit with status 2; a run that fails
while it runs (``errors.RunFailedError``, e.g. a diverging loss) prints one line as well and
exits with status 1; ``--debug`` shows the traceback instead. Configs are validated before
anything is written. SIGINT (Ctrl-C) and SIGTERM stop a command with one line saying how to
resume it and exit status 130 / 143; the interrupted runs keep their last checkpoints.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, Sequence

from . import errors
from .atomic import atomic_write_text, to_json_value

__all__ = ["main", "build_parser", "split_items"]

_EXAMPLES_TRAIN = """examples:
  moduli train configs/adding.yaml configs/tiny.yaml
  moduli train configs/navigation.yaml configs/regularizer/l1.yaml pruning.target=0.98
  moduli train configs/adding.yaml configs/regularizer/learned_r3.yaml train.seed=3 --out-dir runs/adding
"""
_EXAMPLES_EVALUATE = """examples:
  moduli evaluate runs/adding-0123456789ab
"""
_EXAMPLES_SWEEP = """examples:
  moduli sweep configs/navigation.yaml --grid regularizer.kind=none,moduli,l1 --seeds 0,1,2,3,4
  moduli sweep configs/adding.yaml configs/tiny.yaml --grid pruning.target=0.9,0.95 --seeds 0-2 --jobs 2
  moduli sweep configs/navigation.yaml --grid pruning.method=magnitude,random --seeds 0,1 \\
      --executor slurm --slurm timeout_min=600 --slurm slurm_partition=gpu --slurm gpus_per_node=1
"""
_EXAMPLES_REPRODUCE = """examples:
  moduli reproduce navigation --preset smoke
  moduli reproduce adding --preset cpu --jobs 2
  moduli reproduce navigation --preset paper --dry-run
  moduli reproduce language --preset paper --executor slurm --slurm timeout_min=600 --slurm gpus_per_node=1
"""
_EXAMPLES_PLOT = """examples:
  moduli plot runs/adding-0123456789ab
  moduli plot runs/adding-0123456789ab runs/adding-ba9876543210 --out figures/adding
"""
_EXAMPLES_MAIN = """examples:
  moduli train configs/adding.yaml configs/tiny.yaml
  moduli evaluate runs/adding-0123456789ab
  moduli sweep configs/navigation.yaml --grid regularizer.kind=none,moduli,l1 --seeds 0,1,2
  moduli train --help
"""


def split_items(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split command-line items into (config paths, ``key=value`` overrides), keeping order."""
    paths = [item for item in items if "=" not in item]
    overrides = [item for item in items if "=" in item]
    return paths, overrides


def _out_dir_override(out_dir: str | None) -> list[str]:
    # a JSON string is a valid double-quoted YAML scalar, so any path survives override parsing
    return [f"out_dir={json.dumps(out_dir)}"] if out_dir is not None else []


def _need_configs(paths: list[str], command: str) -> None:
    if not paths:
        raise errors.ConfigError(
            f"config error: 'moduli {command}' needs at least one config file, e.g. configs/adding.yaml"
        )


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=to_json_value))


def _cmd_train(args: argparse.Namespace) -> int:
    from .planner import plan_runs
    from .sweep import train_or_reuse

    paths, overrides = split_items(args.items)
    _need_configs(paths, "train")
    (run,) = plan_runs(paths, [overrides + _out_dir_override(args.out_dir)])
    if not args.quiet:
        finished = run.summary is not None
        print(f"run directory: {run.run_dir}" + (" (already finished)" if finished else ""), file=sys.stderr)
    _print_json(train_or_reuse(run.config, args.quiet, wait=args.wait))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .run_dir import RunDir
    from .training import evaluate_run

    _print_json(evaluate_run(RunDir.open(args.run_dir)))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import parse_grid_arg, parse_seeds, run_sweep

    paths, overrides = split_items(args.items)
    _need_configs(paths, "sweep")
    grid: dict[str, list[str]] = {}
    for text in args.grid or []:
        key, values = parse_grid_arg(text)
        if key in grid:
            raise errors.ConfigError(f"config error: --grid {key} is given twice; list all its values once")
        grid[key] = values
    slurm_options = _slurm_options(args)
    table = run_sweep(
        paths,
        grid,
        parse_seeds(args.seeds),
        jobs=args.jobs,
        executor=args.executor,
        slurm_options=slurm_options,
        base_overrides=overrides + _out_dir_override(args.out_dir),
        quiet=args.quiet,
        wait=args.wait,
    )
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
    print(table.to_string(index=False))
    return 0 if (table["status"] == "finished").all() else 1


def _slurm_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--slurm key=value`` pairs as submitit options (integers parsed); only with ``--executor slurm``."""
    options: dict[str, Any] = {}
    for text in args.slurm or []:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise errors.ConfigError(f"config error: --slurm {text!r} is not of the form key=value")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    if options and args.executor != "slurm":
        raise errors.ConfigError("config error: --slurm options need --executor slurm")
    return options


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    slurm_options = _slurm_options(args)
    result = reproduce(
        args.table, args.preset, jobs=args.jobs, out_dir=args.out, runs_dir=args.runs_dir,
        executor=args.executor, slurm_options=slurm_options, dry_run=args.dry_run, quiet=args.quiet, wait=args.wait,
    )
    if args.dry_run:
        return 0
    if not args.quiet:
        print("\n".join(str(p) for p in result.files))
    return 0 if result.failed == 0 else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .figures.training_curves import training_curves  # pandas, seaborn, torch: only for this command

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise errors.StorageError(f"--out {args.out} is a file; pass a directory for the figures")
    for path in training_curves(args.run_dirs, args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``moduli`` command."""
    formatter = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress output")
    common.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--wait", action="store_true",
        help="if another process is training a run directory, wait for it (default: stop with exit status 2)",
    )

    parser = argparse.ArgumentParser(
        prog="moduli",
        description="Geometric sparsification of recurrent neural networks: train, evaluate, sweep.",
        epilog=_EXAMPLES_MAIN,
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,sweep,reproduce,plot}")

    train = sub.add_parser(
        "train",
        parents=[common, waiting],
        help="train one run (resumes an unfinished one)",
        description="Train one run. YAML files merge in order (later wins), then key=value overrides.",
        epilog=_EXAMPLES_TRAIN,
        formatter_class=formatter,
    )
    train.add_argument("items", nargs="+", metavar="CONFIG|KEY=VALUE", help="config files and overrides")
    train.add_argument("--out-dir", metavar="DIR", help="parent directory of run directories (out_dir)")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common],
        help="evaluate a trained run",
        description="Evaluate the model stored in a run directory and print the results as JSON.",
        epilog=_EXAMPLES_EVALUATE,
        formatter_class=formatter,
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a directory made by 'moduli train'")
    evaluate.set_defaults(func=_cmd_evaluate)

    sweep = sub.add_parser(
        "sweep",
        parents=[common, waiting],
        help="run a grid of configs x seeds",
        description=(
            "Run every combination of the --grid values for every seed. All cells are validated "
            "first; finished runs are reused, unfinished ones resume. Prints one row per cell."
        ),
        epilog=_EXAMPLES_SWEEP,
        formatter_class=formatter,
    )
    sweep.add_argument("items", nargs="+", metavar="CONFIG|KEY=VALUE", help="config files and overrides")
    sweep.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="a swept key and its values (repeatable)")
    sweep.add_argument("--seeds", default="0", metavar="S1,S2", help="seeds (train.seed), e.g. 0,1,2 or 0-4 (default 0)")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel local processes (default 1)")
    sweep.add_argument("--executor", choices=("local", "slurm"), default="local", help="where runs execute")
    sweep.add_argument("--slurm", action="append", metavar="KEY=VALUE", help="submitit/SLURM parameter (repeatable)")
    sweep.add_argument("--out-dir", metavar="DIR", help="parent directory of run directories (out_dir)")
    sweep.add_argument("--csv", metavar="PATH", help="also write the table of results as CSV")
    sweep.set_defaults(func=_cmd_sweep)

    repro = sub.add_parser(
        "reproduce",
        parents=[common, waiting],
        help="reproduce a sparsity table of the paper (runs, tables, figures)",
        description=(
            "Train every row x column x seed of a table (finished runs are reused), then write "
            "table.md, table.tex, table.csv and runs.csv. Presets: configs/reproduce/<table>/<preset>.yaml."
        ),
        epilog=_EXAMPLES_REPRODUCE,
        formatter_class=formatter,
    )
    repro.add_argument("table", metavar="TABLE", help="navigation, language, adding or digits")
    repro.add_argument("--preset", required=True, metavar="PRESET", help="smoke, cpu, paper, or a preset .yaml file")
    repro.add_argument("--jobs", type=int, default=None, metavar="N", help="parallel local processes (default: the preset's)")
    repro.add_argument("--out", metavar="DIR", help="output directory (default experiments/results/TABLE/PRESET)")
    repro.add_argument("--runs-dir", metavar="DIR", help="parent of the run directories (default runs/reproduce/TABLE/PRESET)")
    repro.add_argument("--executor", choices=("local", "slurm"), default="local", help="where runs execute")
    repro.add_argument("--slurm", action="append", metavar="KEY=VALUE", help="submitit/SLURM parameter (repeatable)")
    repro.add_argument("--dry-run", action="store_true", help="validate and print the plan, run nothing")
    repro.set_defaults(func=_cmd_reproduce)

    plot = sub.add_parser(
        "plot",
        parents=[common],
        help="draw the training curves of runs (PNG and PDF)",
        description=(
            "Draw loss, metric and sparsity against the step of one or several runs of one task, "
            "from their metrics.jsonl, into DIR/training_curves.png and .pdf."
        ),
        epilog=_EXAMPLES_PLOT,
        formatter_class=formatter,
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories made by 'moduli train'")
    plot.add_argument("--out", default="curves", metavar="DIR", help="output directory (default ./curves)")
    plot.set_defaults(func=_cmd_plot)
    return parser


def _is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, (errors.ModuliError, FileNotFoundError))


def _interrupted_message(interrupt: errors.RunInterrupted, argv: Sequence[str]) -> str:
    """One line: which signal, what each interrupted run keeps, and the command that resumes."""
    runs = getattr(interrupt, "runs", [])
    if len(runs) == 1:
        path, step, kept = runs[0]
        where = f"{path} stopped" + ("" if step is None else f" at step {step}")
        where += "; no checkpoint yet" if kept is None else f"; its checkpoint of step {kept} is kept"
    elif runs:
        where = f"{len(runs)} runs stopped, each keeps its last checkpoint"
    else:
        where = "unfinished runs keep their last checkpoints"
    command = "moduli " + " ".join(shlex.quote(a) for a in argv)
    return f"interrupted by {interrupt.signal_name}: {where} (status interrupted); resume with: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from .interrupts import interruptible

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        with interruptible():
            return args.func(args)
    except errors.RunInterrupted as interrupt:
        if args.debug:
            raise
        print(_interrupted_message(interrupt, argv), file=sys.stderr, flush=True)
        return interrupt.exit_status
    except Exception as exc:
        if args.debug or not _is_user_error(exc):
            raise
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 1 if isinstance(exc, errors.RunFailedError) else 2


if __name__ == "__main__":
    sys.exit(main())
