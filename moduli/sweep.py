"""Grid sweeps over configs: expand a grid, validate every cell, run what is not finished.

Each cell of the grid is a complete config (the YAML files plus the cell's overrides), planned by
:func:`moduli.planner.plan_runs`: all cells are loaded and validated before any run starts. A
finished run (:meth:`RunDir.finished_summary`) is never recomputed; an unfinished one is started
again and resumes from its run directory's checkpoint. Runs execute in this process (``jobs=1``;
runs that differ only in their seed train together as one batched model), in a pool of spawned
processes (``jobs > 1``), or as SLURM jobs through ``submitit`` (``executor="slurm"``; optional
dependency ``pip install 'moduli[cluster]'``).

A train function has the signature ``train_fn(cfg: RunConfig, quiet: bool) -> dict`` (the
summary); it owns the run directory (``RunDir.create(cfg)``) and writes ``summary.json`` last.
The default is the project's trainer, :func:`moduli.training.run_config`.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .config import RunConfig, config_hash
from .errors import ConfigError, DependencyError, one_line
from .planner import expand_grid, format_override_value, plan_runs
from .run_dir import RunDir
from .tasks.registry import task_class

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = [
    "TrainFn",
    "EXECUTORS",
    "check_executor",
    "expand_grid",
    "format_override_value",
    "parse_grid_arg",
    "parse_seeds",
    "train_or_reuse",
    "train_planned",
    "run_sweep",
]

TrainFn = Callable[[RunConfig, bool], dict]
EXECUTORS: tuple[str, ...] = ("local", "slurm")
Result = tuple[str, dict, "str | None"]  # (finished or failed, summary, one-line error)


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


def check_executor(jobs: Any, executor: Any) -> None:
    """Raise ConfigError for a ``jobs`` that is not an integer >= 1 or an unknown ``executor``."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"config error: jobs = {jobs!r} is out of range; allowed: an integer >= 1")
    if executor not in EXECUTORS:
        raise ConfigError(f"config error: executor = {executor!r} is not an allowed choice; allowed: {', '.join(EXECUTORS)}")


def train_or_reuse(cfg: RunConfig, quiet: bool, train_fn: TrainFn | None = None, wait: bool = False) -> dict:
    """The summary of ``cfg``'s run: read back if finished, else trained (default: the project's
    trainer, which waits for a run another process is training if ``wait``)."""
    summary = RunDir.finished_summary(cfg)
    if summary is not None:
        return summary
    if train_fn is None:
        from .training import run_config

        summary = run_config(cfg, quiet, wait=wait)
    else:
        summary = train_fn(cfg, quiet)
    if not isinstance(summary, dict):
        raise TypeError(f"the train function must return the summary dict, got {type(summary).__name__}")
    return summary


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


def train_planned(
    configs: Sequence[RunConfig],
    jobs: int = 1,
    executor: str = "local",
    train_fn: TrainFn | None = None,
    slurm_options: Mapping[str, Any] | None = None,
    *,
    quiet: bool = True,
    batch_seeds: bool = True,
    wait: bool = False,
) -> dict[str, Result]:
    """Train every unfinished run of ``configs`` (each distinct config once); config hash -> result.

    A failed run does not stop the others (it is marked failed in its directory), nor does a run
    directory another process is training (its result is a ``RunLockedError``, unless ``wait``).
    ``train_fn`` None: the project's trainer, and with ``batch_seeds`` (``jobs=1``, local) runs
    that differ only in their seed train together as one batched model
    (:func:`moduli.training.train_batched`; unsupported configs train one by one). With
    ``jobs > 1`` or ``executor="slurm"`` a ``train_fn`` must be a picklable module-level function.
    The task's data are checked before any run starts. ``jobs > 1``: a worker that dies fails only
    its run (:class:`moduli.workers.WorkerDied`); SIGINT/SIGTERM stop every worker and mark their
    runs ``interrupted``. Unless ``quiet``, one overall progress bar (or line per run) with the time left.
    """
    check_executor(jobs, executor)
    if train_fn is not None and (jobs > 1 or executor == "slurm"):
        try:
            pickle.dumps(train_fn)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise TypeError(
                "train_fn must be a module-level function to run in other processes (jobs > 1 or slurm)"
            ) from exc
    unique: dict[str, RunConfig] = {}
    for cfg in configs:
        unique.setdefault(config_hash(cfg), cfg)
    results: dict[str, Result] = {}
    finished = {h: RunDir.finished_summary(c) for h, c in unique.items()}
    pending = {h: c for h, c in unique.items() if finished[h] is None}
    for task in dict.fromkeys(c.task for c in pending.values()):
        task_class(task).check_data([c for c in pending.values() if c.task == task])
    progress = _progress(pending, len(unique), quiet)

    def record(h: str, summary: dict | None, error: BaseException | None) -> None:
        if error is None:
            results[h] = ("finished", summary or {}, None)
        else:
            RunDir.record_failure(unique[h], error)
            results[h] = ("failed", {}, one_line(error))
        status = results[h][0] + (f" ({results[h][2]})" if error is not None else "")
        progress.done(h if h in pending else None, f"{RunDir.path_for(unique[h])}: {status}")

    try:
        for h, summary in finished.items():
            if summary is not None:
                record(h, summary, None)
        # the runs train quietly: the overall progress replaces their own bars
        _train_pending(pending, record, jobs, executor, train_fn, slurm_options, True, batch_seeds, wait)
    finally:
        progress.close()
    return results


def _progress(pending: Mapping[str, RunConfig], total: int, quiet: bool) -> Any:
    from .reproduce.estimate import run_seconds
    from .training.progress import RunsProgress

    return RunsProgress({h: run_seconds(c) for h, c in pending.items()}, total, quiet)


def _mark_interrupted(configs: Sequence[RunConfig], interrupt: BaseException) -> None:
    """Runs whose worker was stopped: status ``interrupted`` where it still says ``running``."""
    runs = getattr(interrupt, "runs", None)
    if runs is None and isinstance(interrupt, KeyboardInterrupt):
        runs = interrupt.runs = []  # type: ignore[attr-defined]
    for cfg in configs:
        run = RunDir(RunDir.path_for(cfg), cfg)
        if runs is not None:
            runs.append((run.path, None, None))
        try:
            if run.path.is_dir() and run.status == "running":
                run.mark_interrupted("stopped with the sweep; its last checkpoint is kept; train it again to resume")
        except Exception:  # a damaged status file: the next run reports it
            pass


def _train_pending(
    pending: dict[str, RunConfig],
    record: Callable[[str, dict | None, BaseException | None], None],
    jobs: int,
    executor: str,
    train_fn: TrainFn | None,
    slurm_options: Mapping[str, Any] | None,
    quiet: bool,
    batch_seeds: bool,
    wait: bool,
) -> None:
    """Train the unfinished runs; ``record`` each outcome as it comes."""

    if executor == "slurm" and pending:
        first = next(iter(pending.values()))
        slurm = _slurm_executor(Path(first.out_dir) / "slurm", slurm_options)
        with slurm.batch():
            submitted = {h: slurm.submit(train_or_reuse, c, quiet, train_fn, wait) for h, c in pending.items()}
        for h, job in submitted.items():
            try:
                record(h, job.result(), None)
            except Exception as exc:  # submitit re-raises the job's error (or a failure of the job)
                record(h, None, exc)
    elif jobs > 1 and len(pending) > 1:
        from .workers import run_in_workers

        workers = min(jobs, len(pending))
        threads = max(1, (os.cpu_count() or 1) // workers)
        # Each worker gets its share of the cores: oversubscribed BLAS/OpenMP threads spin against
        # each other and can make parallel runs many times slower than sequential ones.
        run_in_workers(
            {h: (train_or_reuse, (c, quiet, train_fn, wait)) for h, c in pending.items()}, workers, threads,
            on_result=record,
            on_stop=lambda running, exc: _mark_interrupted([pending[h] for h in running], exc),
        )
    else:
        keys = list(pending)
        groups = [[h] for h in keys]
        if batch_seeds and train_fn is None and len(pending) > 1:
            from .training import seed_groups

            groups = [[keys[i] for i in g] for g in seed_groups([pending[h] for h in keys])]
        for group in groups:
            if len(group) > 1:
                from .training.batched import train_batched

                try:
                    outcomes = train_batched([pending[h] for h in group], quiet, wait=wait)
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
                record(h, train_or_reuse(c, quiet, train_fn, wait), None)
            except Exception as exc:
                record(h, None, exc)


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
    wait: bool = False,
) -> pandas.DataFrame:
    """Run every cell of ``grid`` x ``seeds`` on top of ``config_paths``; one row per cell.

    Columns: the grid keys and ``train.seed`` (override strings), ``run_dir``, ``config_hash``,
    ``status`` (finished/failed), ``error`` (one line or None), then the summary's keys.
    A failed cell does not stop the others. ``train_fn`` defaults to the project's trainer
    (see :func:`train_planned`, which also says how seeds are batched).
    """
    import pandas as pd

    check_executor(jobs, executor)
    cells = expand_grid(list(base_overrides), grid, seeds)
    runs = plan_runs(
        config_paths, cells, check_hardware=executor == "local", describe=lambda i: f"sweep cell: {' '.join(cells[i])}"
    )
    results = train_planned(
        [run.config for run in runs], jobs, executor, train_fn, slurm_options, quiet=quiet, batch_seeds=batch_seeds,
        wait=wait,
    )
    rows = []
    for cell, run in zip(cells, runs):
        h = config_hash(run.config)
        status, summary, error = results[h]
        varied = dict(item.split("=", 1) for item in cell[len(base_overrides) :])
        meta = {"run_dir": str(run.run_dir), "config_hash": h, "status": status, "error": error}
        rows.append({**varied, **meta, **{k: v for k, v in summary.items() if k not in meta and k not in varied}})
    return pd.DataFrame.from_records(rows)
