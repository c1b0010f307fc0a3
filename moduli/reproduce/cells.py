"""The runs behind a table: one full RunConfig per (run set, column, seed).

Runs are organised in *sweep groups*, one per run set (plus one for its dense reference): the
group's YAML files are the preset's configs followed by the run set's recipes, its grid is
pruning method x target sparsity, and its seeds are the preset's. Each group is one call of
:func:`moduli.sweep.run_sweep`, and :func:`build_cells` loads every cell's config exactly as that
call will, so that all cells are validated before any run starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig, load_config, validate_config
from ..errors import ConfigError
from ..run_dir import RunDir
from ..sweep import expand_grid
from .presets import PROJECT_ROOT, Preset
from .tables import Column, TableSpec, applies, build_columns

__all__ = ["Cell", "SweepGroup", "plan_groups", "build_cells"]


@dataclass(frozen=True)
class SweepGroup:
    """Arguments of one :func:`moduli.sweep.run_sweep` call."""

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

    Loading is the slow part of small runs, so only each group's first cell goes through
    :func:`load_config`; the others are that config with their method, target and seed replaced
    (the same values their override strings give) and validated again.

    Raises ConfigError naming the run set, column and seed of the first invalid cell.
    """
    groups = plan_groups(spec, preset, runs_dir)
    cells = []
    for index, g in enumerate(groups):
        items = expand_grid(list(g.base_overrides), g.grid, list(g.seeds))
        combos = [(m, t, s) for m, t in itertools.product(g.methods, g.targets) for s in g.seeds]
        first: RunConfig | None = None
        for (method, target, seed), overrides in zip(combos, items):
            column = _column_key(method, target)
            try:
                if first is None:  # the group's first cell is loaded in full, like run_sweep does
                    cfg = first = load_config(list(g.paths), overrides, check_hardware=check_hardware)
                else:  # the others differ only in method, target and seed (same values as the overrides)
                    cfg = validate_config(
                        dataclasses.replace(
                            first,
                            pruning=dataclasses.replace(first.pruning, method=method, target=float(target)),
                            train=dataclasses.replace(first.train, seed=seed),
                        ),
                        check_hardware=check_hardware,
                    )
            except ConfigError as exc:
                raise ConfigError(f"{exc} [table cell: {g.run_set}, {column}, seed {seed}]") from exc
            if cfg.task != spec.task:
                raise ConfigError(
                    f"preset error: the configs of preset {preset.name!r} train task {cfg.task!r}, "
                    f"but table {spec.name} needs task {spec.task!r}; list configs/{spec.task}.yaml first (in {preset.path})"
                )
            cells.append(Cell(g.run_set, column, seed, tuple(overrides), cfg, index))
    return groups, cells


def columns_of(preset: Preset) -> tuple[Column, ...]:
    """The table columns of ``preset`` (shortcut for :func:`build_columns`)."""
    return build_columns(preset.sparsities, preset.dense)
