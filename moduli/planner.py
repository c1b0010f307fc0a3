"""Plan runs: from config files and override cells to validated (config, run directory) pairs.

:func:`expand_grid` turns a grid of values and a list of seeds into override cells;
:func:`plan_runs` loads and validates every cell before anything runs and pairs it with its run
directory. The command line's ``train``, :func:`moduli.sweep.run_sweep` and
:func:`moduli.reproduce.reproduce` all plan through here; :class:`moduli.run_dir.RunDir` says
where a run lives and whether it has finished.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import RunConfig, load_config
from .config.load import with_overrides
from .errors import ConfigError
from .run_dir import RunDir

__all__ = ["PlannedRun", "SEED_KEY", "expand_grid", "format_override_value", "plan_runs"]

SEED_KEY = "train.seed"  # the override a sweep's seeds set


@dataclass(frozen=True)
class PlannedRun:
    """One run: its validated config, the overrides it was loaded with, and its directory."""

    config: RunConfig
    overrides: tuple[str, ...]  # every key=value override after the config files

    @property
    def run_dir(self) -> Path:
        """``<out_dir>/<task>-<config hash>``."""
        return RunDir.path_for(self.config)

    @property
    def summary(self) -> dict[str, Any] | None:
        """The run's summary if it has finished, else None."""
        return RunDir.finished_summary(self.config)


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


def _changed(first: Sequence[str], cell: Sequence[str]) -> list[str] | None:
    """The items of ``cell`` that differ from ``first``, if both set the same keys in the same order."""
    keys = lambda items: [item.split("=", 1)[0] for item in items]  # noqa: E731
    if len(first) != len(cell) or keys(first) != keys(cell):
        return None
    return [b for a, b in zip(first, cell) if a != b]


def plan_runs(
    paths: Sequence[str | Path],
    cells: Sequence[Sequence[str]],
    *,
    check_hardware: bool = True,
    describe: Callable[[int], str] | None = None,
) -> list[PlannedRun]:
    """Load and validate the config of every cell (``paths`` merged in order, then the cell's overrides).

    The first cell is loaded in full; a cell that changes only plain scalar keys of it (a grid
    cell) takes the config of the first with those values replaced (:func:`with_overrides`, the
    same config and hash as a full load, far faster). Raises ConfigError before anything runs,
    naming the cell with ``describe(i)`` if given.
    """
    runs: list[PlannedRun] = []
    for i, cell in enumerate(cells):
        try:
            changed = _changed(runs[0].overrides, cell) if runs else None
            cfg = with_overrides(runs[0].config, changed, check_hardware=check_hardware) if changed is not None else None
            if cfg is None:
                cfg = load_config(list(paths), list(cell), check_hardware=check_hardware)
        except ConfigError as exc:
            if describe is None:
                raise
            raise ConfigError(f"{exc} [{describe(i)}]") from exc
        runs.append(PlannedRun(cfg, tuple(cell)))
    return runs
