"""From run directories to the numbers of a table.

:func:`collect_runs` reads every cell's run directory and gives one row per (table row source,
column, seed): the run's status and its value of the table's metric. :func:`aggregate` turns
that into one row per displayed table cell: mean and sample standard deviation over the finished
seeds, how many failed, and Welch t-tests against the No reg. row (same column) and against the
random-pruning column (same row).

Metric of a run: the task's headline metric of the final evaluation (``summary["value"]``:
navigation ``error_cm``, adding ``mse``), or on the test split for a task that has one (language
perplexity, digits error: ``summary["test"]``). A lottery row reading ``pruned`` takes
``summary["pruned_model"]`` (the model before re-initialisation), which may hold validation
metrics only: its split is recorded in ``split``.
A run counts as failed when its status is ``failed`` or when it finished with a non-finite
metric (a diverged loss). Runs that never started count as ``missing``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from ..run_dir import RunDir
from ..tasks.registry import task_class
from .cells import Cell
from .statistics import mean_std, welch_test
from .tables import NO_REG, Column, TableSpec, applies, random_partner

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["RUN_COLUMNS", "CELL_COLUMNS", "metric_value", "collect_runs", "aggregate"]

RUN_COLUMNS: tuple[str, ...] = (
    "row", "run_set", "reading", "column", "method", "target", "seed", "status", "value", "split",
    "sparsity", "recurrent_sparsity", "steps", "wall_time_s", "data", "error", "run_dir",
)
CELL_COLUMNS: tuple[str, ...] = (
    "group", "label", "row", "column", "method", "target", "mean", "std", "n", "failed", "missing", "seeds",
    "sparsity", "recurrent_sparsity", "t_vs_noreg", "p_vs_noreg", "t_vs_random", "p_vs_random",
)


def metric_value(summary: dict[str, Any], task: str, reading: str) -> tuple[float, str]:
    """(value of the table's metric, split it was measured on) from a run's ``summary`` (see
    :meth:`moduli.tasks.base.Task.table_value`)."""
    return task_class(task).table_value(summary, reading)


def _recurrent_sparsity(summary: dict[str, Any]) -> float:
    per = summary.get("per_matrix_sparsity") or {}
    values = [float(v) for k, v in per.items() if "weight_hh" in k]
    return sum(values) / len(values) if values else math.nan


def _status_error(run: RunDir) -> str:
    import json

    try:
        return str(json.loads(run.status_path.read_text(encoding="utf-8")).get("error") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def collect_runs(spec: TableSpec, cells: Sequence[Cell], columns: Sequence[Column]) -> pandas.DataFrame:
    """One row per (row source, column, seed), in table order, read from the cells' run directories.

    Columns: :data:`RUN_COLUMNS`. ``status`` is finished, failed, running or missing; ``value``
    is NaN unless finished with a finite metric.
    """
    import pandas as pd

    by_key = {(c.run_set, c.column, c.seed): c for c in cells}
    col_by_key = {c.key: c for c in columns}
    sources = list(dict.fromkeys((r.runs, r.reading) for r in spec.rows))
    seeds = list(dict.fromkeys(c.seed for c in cells))
    records = []
    for run_set, reading in sources:
        for column in columns:
            for seed in seeds:
                cell = by_key.get((run_set, column.key, seed))
                if cell is None:
                    continue
                run = RunDir(cell.run_dir, cell.config)
                status, value, split, error = run.status, math.nan, "", ""
                summary: dict[str, Any] = {}
                if status == "finished":
                    summary = run.summary() or {}
                    try:
                        value, split = metric_value(summary, spec.task, reading)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise ValueError(f"{cell.run_dir}/summary.json: {exc}") from exc
                    if not math.isfinite(value):
                        status, error, value = "failed", f"non-finite {spec.metric}: {value}", math.nan
                elif status == "failed":
                    error = _status_error(run)
                records.append({
                    "row": run_set if reading == "final" else f"{run_set}/{reading}",
                    "run_set": run_set,
                    "reading": reading,
                    "column": column.key,
                    "method": col_by_key[column.key].method,
                    "target": col_by_key[column.key].target,
                    "seed": seed,
                    "status": status,
                    "value": value,
                    "split": split,
                    "sparsity": float(summary.get("sparsity", math.nan)),
                    "recurrent_sparsity": _recurrent_sparsity(summary),
                    "steps": summary.get("steps", math.nan),
                    "wall_time_s": float(summary.get("wall_time_s", math.nan)),
                    "data": str(summary.get("data", "")),
                    "error": error,
                    "run_dir": str(cell.run_dir),
                })
    return pd.DataFrame.from_records(records, columns=list(RUN_COLUMNS))


def aggregate(spec: TableSpec, runs: pandas.DataFrame, columns: Sequence[Column]) -> pandas.DataFrame:
    """One row per applicable displayed cell (table order): statistics over seeds and t-tests.

    ``std`` uses ddof=1. ``failed`` counts failed runs (excluded from mean/std/tests), ``missing``
    runs that have not run. ``p_vs_noreg``: Welch test against the No reg. row in the same column
    (NaN for No reg. itself); ``p_vs_random``: against the random column at the same sparsity in
    the same row (NaN for random and dense columns).
    """
    import pandas as pd

    values: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for (row, column), group in runs.groupby(["row", "column"], sort=False):
        ok = group[group["status"] == "finished"]
        values[(row, column)] = [float(v) for v in ok["value"]]
        counts[(row, column)] = {
            "failed": int((group["status"] == "failed").sum()),
            "missing": int(group["status"].isin(["missing", "running"]).sum()),
            "seeds": int(len(group)),
            "sparsity": float(ok["sparsity"].mean()) if len(ok) else math.nan,
            "recurrent_sparsity": float(ok["recurrent_sparsity"].mean()) if len(ok) else math.nan,
        }
    first = next((c.target for c in columns if c.method != "none"), 0.0)  # the lottery's sparsity
    records = []
    for row in spec.rows:
        rs = spec.run_set(row.runs)
        for column in columns:
            if not applies(rs, column, first) or (row.source, column.key) not in counts:
                continue
            vals = values[(row.source, column.key)]
            mean, std = mean_std(vals)
            t_reg = p_reg = t_rand = p_rand = math.nan
            if row.source != NO_REG and (NO_REG, column.key) in values:
                t_reg, p_reg = welch_test(vals, values[(NO_REG, column.key)])
            partner = random_partner(column)
            if partner is not None and (row.source, partner) in values:
                t_rand, p_rand = welch_test(vals, values[(row.source, partner)])
            records.append({
                "group": row.group, "label": row.label, "row": row.source, "column": column.key,
                "method": column.method, "target": column.target, "mean": mean, "std": std, "n": len(vals),
                **counts[(row.source, column.key)],
                "t_vs_noreg": t_reg, "p_vs_noreg": p_reg, "t_vs_random": t_rand, "p_vs_random": p_rand,
            })
    return pd.DataFrame.from_records(records, columns=list(CELL_COLUMNS))
