"""The runs behind a table: one full RunConfig per (run set, column, seed).

Runs are organised in *sweep groups*, one per run set (plus one for its dense reference): the
group's YAML files are the preset's configs followed by the run set's recipes, its grid is
pruning method x target sparsity, and its seeds are the preset's. :func:`build_cells` plans every
group's cells with :func:`moduli.planner.plan_runs` (as a sweep of that grid would), so that all
cells are validated before any run starts.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError
from ..planner import expand_grid, plan_runs
from ..run_dir import RunDir
from .presets import PROJECT_ROOT, Preset
from .tables import TableSpec, applies, build_columns

__all__ = ["Cell", "SweepGroup", "plan_groups", "build_cells"]


@dataclass(frozen=True)
class SweepGroup:
    """The runs of one run set: a sweep of pruning method x target x seed."""

    run_set: str  # key of the run set trained by this group
    paths: tuple[Path, ...]  # YAML configs: the preset's, then the run set's recipes
    base_overrides: tuple[str, ...]  # preset overrides, run-set overrides, out_dir
    methods: tuple[str, ...]  # pruning.method values of the grid
    targets: tuple[float, ...]  # pruning.target values of the grid
    seeds: tuple[int, ...]  # train.seed values

    @property
    def grid(self) -> dict[str, list]:
        """The sweep grid (method outermost, then target)."""
        return {"pruning.method": list(self.methods), "pruning.target": list(self.targets)}


@dataclass(frozen=True)
class Cell:
    """One run: a run set trained for one column and one seed."""

    run_set: str  # key of the run set
    column: str  # key of the column
    seed: int  # train.seed
    overrides: tuple[str, ...]  # every key=value override of the run (after the group's paths)
    config: RunConfig  # the validated config
    group: int  # index of its SweepGroup in the list build_cells returns

    @property
    def run_dir(self) -> Path:
        """``<runs_dir>/<task>-<config hash>``."""
        return RunDir.path_for(self.config)


def _column_key(method: str, target: float) -> str:
    return "dense" if method == "none" else f"{method}@{target:g}"


def plan_groups(spec: TableSpec, preset: Preset, runs_dir: str | Path) -> list[SweepGroup]:
    """The sweep groups of ``spec`` under ``preset``, run-set order as in the table definition."""
    out = [f"out_dir={json.dumps(str(runs_dir))}"]
    columns = build_columns(preset.sparsities, preset.dense)
    first = preset.sparsities[0]
    groups = []
    for rs in spec.run_sets:
        paths = tuple(preset.configs) + tuple(PROJECT_ROOT / r for r in rs.recipes)
        base = tuple(preset.overrides) + tuple(rs.overrides) + tuple(out)
        pruned = [c for c in columns if c.method != "none" and applies(rs, c, first)]
        if pruned:
            methods = tuple(dict.fromkeys(c.method for c in pruned))
            targets = tuple(dict.fromkeys(c.target for c in pruned))
            covered = {c.key for c in pruned}
            product = {_column_key(m, t) for m, t in itertools.product(methods, targets)}
            if product != covered:  # cannot happen with the table rules; guards future edits
                raise AssertionError(f"run set {rs.key}: columns {sorted(covered)} are not a method x target grid")
            groups.append(SweepGroup(rs.key, paths, base, methods, targets, preset.seeds))
        if any(c.method == "none" and applies(rs, c, first) for c in columns):
            groups.append(SweepGroup(rs.key, paths, base, ("none",), (0.0,), preset.seeds))
    return groups


def build_cells(
    spec: TableSpec, preset: Preset, runs_dir: str | Path, *, check_hardware: bool = True
) -> tuple[list[SweepGroup], list[Cell]]:
    """All sweep groups and cells; every cell's config is loaded and validated here.

    Raises ConfigError naming the run set, column and seed of the first invalid cell.
    """
    groups = plan_groups(spec, preset, runs_dir)
    cells = []
    for index, g in enumerate(groups):
        items = expand_grid(list(g.base_overrides), g.grid, list(g.seeds))
        combos = [(m, t, s) for m, t in itertools.product(g.methods, g.targets) for s in g.seeds]

        def describe(i: int, g: SweepGroup = g, combos: list = combos) -> str:
            method, target, seed = combos[i]
            return f"table cell: {g.run_set}, {_column_key(method, target)}, seed {seed}"

        runs = plan_runs(list(g.paths), items, check_hardware=check_hardware, describe=describe)
        for (method, target, seed), run in zip(combos, runs):
            if run.config.task != spec.task:
                raise ConfigError(
                    f"preset error: the configs of preset {preset.name!r} train task {run.config.task!r}, "
                    f"but table {spec.name} needs task {spec.task!r}; list configs/{spec.task}.yaml first (in {preset.path})"
                )
            cells.append(Cell(g.run_set, _column_key(method, target), seed, run.overrides, run.config, index))
    return groups, cells
