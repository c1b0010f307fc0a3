"""Grid sweeps over configs: expand a grid, validate every cell, run what is not finished.

Each cell of the grid is a complete config (the YAML files plus the cell's overrides). All
cells are loaded and validated before any run starts. A run whose ``summary.json`` exists is
never recomputed; an unfinished one is started again and its train function resumes it from the
run directory's checkpoint. Runs execute in this process (``jobs=1``), in a pool of spawned
processes (``jobs > 1``), or as SLURM jobs through ``submitit`` (``executor="slurm"``; optional
dependency ``pip install 'moduli[cluster]'``).

A train function has the signature ``train_fn(cfg: RunConfig, quiet: bool) -> dict`` (the
summary); it owns the run directory (``RunDir.create(cfg)``) and writes ``summary.json`` last.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import itertools
import json
import multiprocessing
import os
import pickle
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .config import RunConfig, config_hash, load_config
from .errors import ConfigError, DependencyError
from .run_dir import RunDir

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "TrainFn",
    "EXECUTORS",
    "expand_grid",
    "format_override_value",
    "parse_grid_arg",
    "parse_seeds",
    "resolve_train_fn",
    "train_or_reuse",
    "run_sweep",
]

TrainFn = Callable[[RunConfig, bool], dict]
EXECUTORS: tuple[str, ...] = ("local", "slurm")
SEED_KEY = "train.seed"  # the override a sweep's seeds set


def format_override_value(value: Any) -> str:
    """``value`` written as the right-hand side of a ``key=value`` override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    if isinstance(value, str):
        return value
    raise TypeError(f"grid values must be numbers, strings, booleans, None or lists, got {type(value).__name__}")


def _limit_threads(threads: int) -> None:
    """Process-pool initializer: use ``threads`` intra-op threads in this worker."""
    import torch

    torch.set_num_threads(threads)


def expand_grid(
    base_overrides: Sequence[str], grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]
) -> list[list[str]]:
    """One override list per cell: ``base_overrides`` + one value per grid key + ``train.seed``.

    Cells run over the cartesian product of the grid values (in key order, the last key
    fastest) and, innermost, over ``seeds``. Example: ``expand_grid([], {"a.b": [1, 2]}, [0, 1])``
    gives ``[["a.b=1", "train.seed=0"], ["a.b=1", "train.seed=1"], ["a.b=2", ...], ...]``.
    """
    if isinstance(base_overrides, str):
        raise TypeError("base_overrides must be a list of 'key=value' strings, not one string")
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a mapping key -> list of values, got {type(grid).__name__}")
    for key, values in grid.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ConfigError(f"config error: grid key {key!r} must be a dotted config key such as pruning.target")
        if key == SEED_KEY:
            raise ConfigError(f"config error: grid key {SEED_KEY} conflicts with the seeds; pass the seeds as seeds")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(f"config error: grid values of {key} must be a non-empty list, got {values!r}")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"config error: seeds must be a non-empty list of integers, got {seeds!r}")
    keys = list(grid)
    cells = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        cell = list(base_overrides) + [f"{k}={format_override_value(v)}" for k, v in zip(keys, combo)]
        cells.extend(cell + [f"{SEED_KEY}={s}"] for s in seeds)
    return cells


def parse_grid_arg(text: str) -> tuple[str, list[str]]:
    """``"key=v1,v2"`` -> ``("key", ["v1", "v2"])`` (values stay strings, parsed as YAML later)."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",")]
    if not sep or not key.strip() or not values.strip() or any(v == "" for v in items):
        raise ConfigError(
            f"config error: grid {text!r} is not of the form key=v1,v2,... (e.g. --grid pruning.target=0.9,0.98)"
        )
    return key.strip(), items


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a range ``"0-4"`` -> ``[0, 1, 2, 3, 4]``."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        span = re.fullmatch(r"(\d+)-(\d+)", part)
        if span:
            seeds.extend(range(int(span.group(1)), int(span.group(2)) + 1))
            continue
        try:
            seeds.append(int(part))
        except ValueError as exc:
            raise ConfigError(f"config error: seeds {text!r} must be integers such as 0,1,2 or a range 0-4") from exc
    if not seeds:
        raise ConfigError(f"config error: seeds {text!r} name no seed; give e.g. --seeds 0,1,2")
    return seeds


def _train_with_run_training(cfg: RunConfig, quiet: bool) -> dict:
    """Adapter for a training module exposing ``run_training(config, run_dir, quiet)``."""
    training = importlib.import_module("moduli.training")
    return training.run_training(cfg, RunDir.create(cfg), quiet)


def resolve_train_fn() -> TrainFn:
    """The project's train function: ``moduli.training.run_config(cfg, quiet)``.

    Falls back to wrapping ``moduli.training.run_training(config, run_dir, quiet)``.
    """
    try:
        training = importlib.import_module("moduli.training")
    except ModuleNotFoundError as exc:
        if exc.name == "moduli.training":
            raise DependencyError(
                "the training module moduli.training is not available in this installation; "
                "reinstall the package (pip install -e .)"
            ) from exc
        raise
    if callable(getattr(training, "run_config", None)):
        return training.run_config
    if callable(getattr(training, "run_training", None)):
        return _train_with_run_training
    raise DependencyError("moduli.training defines neither run_config nor run_training; reinstall the package")


def train_or_reuse(cfg: RunConfig, quiet: bool, train_fn: TrainFn) -> dict:
    """The summary of ``cfg``'s run: read from ``summary.json`` if finished, else trained."""
    summary_path = RunDir.path_for(cfg) / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    summary = train_fn(cfg, quiet)
    if not isinstance(summary, dict):
        raise TypeError(f"the train function must return the summary dict, got {type(summary).__name__}")
    return summary


def _mark_failed(cfg: RunConfig, error: BaseException) -> None:
    path = RunDir.path_for(cfg)
    if path.is_dir() and not (path / "summary.json").exists():
        RunDir(path, cfg).mark_failed(error)


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _slurm_executor(folder: Path, options: Mapping[str, Any] | None) -> Any:
    try:
        import submitit
    except ImportError as exc:
        raise DependencyError(
            "executor 'slurm' needs the optional dependency submitit; install it with: pip install 'moduli[cluster]'"
        ) from exc
    opts = dict(options or {})
    cluster = opts.pop("cluster", None)  # e.g. "debug" runs the jobs in this process
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    try:
        executor.update_parameters(**opts)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config error: invalid slurm option ({exc}); see submitit's AutoExecutor parameters") from exc
    return executor


def run_sweep(
    config_paths: Sequence[str | Path],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    jobs: int = 1,
    executor: str = "local",
    train_fn: TrainFn | None = None,
    slurm_options: Mapping[str, Any] | None = None,
    *,
    base_overrides: Sequence[str] = (),
    quiet: bool = True,
    batch_seeds: bool = True,
) -> pandas.DataFrame:
    """Run every cell of ``grid`` x ``seeds`` on top of ``config_paths``; one row per cell.

    Columns: the grid keys and ``train.seed`` (override strings), ``run_dir``, ``config_hash``,
    ``status`` (finished/failed), ``error`` (one line or None), then the summary's keys.
    A failed cell does not stop the others. ``train_fn`` defaults to :func:`resolve_train_fn`;
    with ``jobs > 1`` or ``executor="slurm"`` it must be a picklable module-level function.
    With ``batch_seeds`` (and the default train function, ``jobs=1``, local executor), unfinished
    cells that differ only in their seed are trained together as one batched model
    (:func:`moduli.training.batched.train_batched`; unsupported configs train one by one).
    """
    import pandas as pd

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"config error: jobs = {jobs!r} is out of range; allowed: an integer >= 1")
    if executor not in EXECUTORS:
        raise ConfigError(f"config error: executor = {executor!r} is not an allowed choice; allowed: {', '.join(EXECUTORS)}")
    cells = expand_grid(list(base_overrides), grid, seeds)
    configs = []
    for cell in cells:  # validate every cell before anything runs
        try:
            configs.append(load_config(config_paths, cell, check_hardware=executor == "local"))
        except ConfigError as exc:
            raise ConfigError(f"{exc} [sweep cell: {' '.join(cell)}]") from exc
    if train_fn is None:
        train_fn = resolve_train_fn()
    # Seeds are batched only for the project's own trainer (its batched twin reproduces it exactly).
    default_train_fn = getattr(train_fn, "__module__", None) == "moduli.training.loop"
    if jobs > 1 or executor == "slurm":
        try:
            pickle.dumps(train_fn)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise TypeError(
                "train_fn must be a module-level function to run in other processes (jobs > 1 or slurm)"
            ) from exc

    hashes = [config_hash(c) for c in configs]
    unique: dict[str, RunConfig] = {}
    for h, c in zip(hashes, configs):
        unique.setdefault(h, c)
    results: dict[str, tuple[str, dict, str | None]] = {}  # hash -> (status, summary, error)

    def record(h: str, summary: dict | None, error: BaseException | None) -> None:
        if error is None:
            results[h] = ("finished", summary or {}, None)
        else:
            _mark_failed(unique[h], error)
            results[h] = ("failed", {}, _one_line(error))
        if not quiet:
            status = results[h][0] + (f" ({results[h][2]})" if error is not None else "")
            print(f"[{len(results)}/{len(unique)}] {RunDir.path_for(unique[h])}: {status}", file=sys.stderr)

    pending = {}
    for h, c in unique.items():
        summary_path = RunDir.path_for(c) / "summary.json"
        if summary_path.is_file():
            record(h, json.loads(summary_path.read_text(encoding="utf-8")), None)
        else:
            pending[h] = c

    if executor == "slurm" and pending:
        first = next(iter(pending.values()))
        slurm = _slurm_executor(Path(first.out_dir) / "slurm", slurm_options)
        with slurm.batch():
            submitted = {h: slurm.submit(train_or_reuse, c, quiet, train_fn) for h, c in pending.items()}
        for h, job in submitted.items():
            try:
                record(h, job.result(), None)
            except Exception as exc:  # submitit re-raises the job's error (or a failure of the job)
                record(h, None, exc)
    elif jobs > 1 and len(pending) > 1:
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, len(pending))
        threads = max(1, (os.cpu_count() or 1) // workers)
        # Each worker gets its share of the cores: oversubscribed BLAS/OpenMP threads spin against
        # each other and can make parallel runs many times slower than sequential ones.
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_limit_threads, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(train_or_reuse, c, quiet, train_fn): h for h, c in pending.items()}
            for future in concurrent.futures.as_completed(futures):
                try:
                    record(futures[future], future.result(), None)
                except Exception as exc:
                    record(futures[future], None, exc)
    else:
        groups = [[h] for h in pending]
        if batch_seeds and default_train_fn and len(pending) > 1:
            batched = importlib.import_module("moduli.training.batched")
            keys = list(pending)
            groups = [[keys[i] for i in g] for g in batched.seed_groups([pending[h] for h in keys])]
        for group in groups:
            if len(group) > 1:
                try:
                    outcomes = batched.train_batched([pending[h] for h in group], quiet)
                except Exception as exc:
                    outcomes = [exc] * len(group)
                for h, out in zip(group, outcomes):
                    if isinstance(out, Exception):
                        record(h, None, out)
                    else:
                        record(h, out, None)
                continue
            h, c = group[0], pending[group[0]]
            try:
                record(h, train_or_reuse(c, quiet, train_fn), None)
            except Exception as exc:
                record(h, None, exc)

    rows = []
    for cell, cfg, h in zip(cells, configs, hashes):
        status, summary, error = results[h]
        varied = dict(item.split("=", 1) for item in cell[len(base_overrides) :])
        meta = {"run_dir": str(RunDir.path_for(cfg)), "config_hash": h, "status": status, "error": error}
        rows.append({**varied, **meta, **{k: v for k, v in summary.items() if k not in meta and k not in varied}})
    return pd.DataFrame.from_records(rows)
