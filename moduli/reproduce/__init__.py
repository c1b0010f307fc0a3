"""Reproduce the paper's sparsity tables (navigation, language, adding) and the digits table,
random pruning beside every result.

``reproduce(table, preset)`` (command line: ``moduli reproduce TABLE --preset smoke|cpu|paper``)
builds every (row, column, seed) run from the task config, the regulariser recipes and the preset,
validates them all, trains what is not finished, and writes ``table.md``, ``table.tex``,
``table.csv`` and ``runs.csv``.
"""

from .aggregate import aggregate, collect_runs, metric_value
from .cells import Cell, SweepGroup, build_cells, plan_groups
from .estimate import estimate_gpu_hours, run_seconds, train_step_flops
from .pipeline import ReproduceResult, default_out_dir, default_runs_dir, reproduce
from .presets import PRESET_NAMES, Preset, load_preset
from .statistics import mean_std, welch_test
from .tables import TABLES, Column, Row, RunSet, TableSpec, build_columns, table_spec

__all__ = [
    "PRESET_NAMES",
    "TABLES",
    "Cell",
    "Column",
    "Preset",
    "ReproduceResult",
    "Row",
    "RunSet",
    "SweepGroup",
    "TableSpec",
    "aggregate",
    "build_cells",
    "build_columns",
    "collect_runs",
    "default_out_dir",
    "default_runs_dir",
    "estimate_gpu_hours",
    "load_preset",
    "mean_std",
    "metric_value",
    "plan_groups",
    "reproduce",
    "run_seconds",
    "table_spec",
    "train_step_flops",
    "welch_test",
]
