"""``reproduce(table, preset)``: build every cell, validate, train what is missing, write the table.

Steps: read the preset; plan one RunConfig per (run set, column, seed) and validate them all
(and check that the task's data exist) before anything runs; train the unfinished runs through
:func:`moduli.sweep.train_planned` (finished runs are read back, unfinished ones resume); read
every run directory; aggregate; write ``table.md``, ``table.tex``, ``table.csv``, ``runs.csv``;
draw the figures of :mod:`moduli.figures`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..atomic import atomic_write_text
from ..run_dir import RunDir
from ..sweep import TrainFn, check_executor, train_planned
from ..tasks.registry import task_class
from .aggregate import CELL_COLUMNS, RUN_COLUMNS, aggregate, collect_runs
from .cells import Cell, build_cells
from .estimate import assumptions_text, estimate_gpu_hours
from .presets import Preset, load_preset
from .render import TableText, caption_text, render_latex, render_markdown, to_csv
from .tables import TableSpec, build_columns, table_spec

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["ReproduceResult", "reproduce", "default_out_dir", "default_runs_dir", "OUTPUT_FILES"]

OUTPUT_FILES: tuple[str, ...] = ("table.md", "table.tex", "table.csv", "runs.csv")


@dataclass
class ReproduceResult:
    """What :func:`reproduce` did and produced."""

    table: str  # table name
    preset: str  # preset name
    out_dir: Path  # where the tables went
    runs_dir: Path  # parent of the run directories
    cells: list[Cell]  # every run of the table (unique configs may repeat across rows)
    to_train: int  # runs that were not finished before this call (0: nothing was trained)
    gpu_hours: float  # the estimate printed before the runs (see moduli.reproduce.estimate)
    runs: pandas.DataFrame | None = None  # one row per (row source, column, seed); None for a dry run
    table_cells: pandas.DataFrame | None = None  # aggregated cells; None for a dry run
    files: tuple[Path, ...] = ()  # files written (tables and figures)

    @property
    def failed(self) -> int:
        """Number of failed runs (0 for a dry run)."""
        return 0 if self.runs is None else int((self.runs["status"] == "failed").sum())


def default_out_dir(table: str, preset: str) -> Path:
    """``experiments/results/<table>/<preset>``."""
    return Path("experiments") / "results" / table / preset


def default_runs_dir(table: str, preset: str) -> Path:
    """``runs/reproduce/<table>/<preset>``."""
    return Path("runs") / "reproduce" / table / preset


def _write_tables(spec: TableSpec, preset: Preset, cells: list[Cell], out_dir: Path) -> tuple[Any, Any, list[Path]]:
    columns = build_columns(preset.sparsities, preset.dense)
    runs = collect_runs(spec, cells, columns)
    table = aggregate(spec, runs, columns)
    text = TableText(spec, preset, columns, caption_text(spec, preset, cells[0].config, runs))
    prefix = {"table": spec.name, "preset": preset.name}
    contents = {
        "table.md": render_markdown(text, table),
        "table.tex": render_latex(text, table),
        "table.csv": to_csv(table, prefix, CELL_COLUMNS),
        "runs.csv": to_csv(runs, prefix, RUN_COLUMNS),
    }
    written = []
    for name in OUTPUT_FILES:
        atomic_write_text(out_dir / name, contents[name])
        written.append(out_dir / name)
    return runs, table, written


def _warn(message: str) -> None:
    print("warning: " + " ".join(message.split()), file=sys.stderr)


def _first_finished(runs: Any, row: str, column: str) -> str | None:
    hits = runs[(runs["row"] == row) & (runs["column"] == column) & (runs["status"] == "finished")]
    return None if hits.empty else str(hits.iloc[0]["run_dir"])


def _curve_frame(spec: TableSpec, runs: Any) -> Any:
    """Runs for error-vs-sparsity curves: x = target sparsity; the dense runs start every method's curve.

    Lottery runs (one sparsity only) are left out. Columns: row, method, sparsity, seed, value.
    """
    import pandas as pd

    lottery = {rs.key for rs in spec.run_sets if rs.lottery}
    geometric = {rs.key for rs in spec.run_sets if rs.geometric}
    frame = runs[~runs["run_set"].isin(lottery)]
    pruned = frame[frame["method"] != "none"].assign(sparsity=lambda f: f["target"])
    dense = frame[frame["method"] == "none"]
    starts = [
        (dense[dense["run_set"].isin(geometric)] if method == "moduli" else dense).assign(method=method, sparsity=0.0)
        for method in pruned["method"].unique()
    ]
    out = pd.concat([*starts, pruned], ignore_index=True)
    return out.loc[:, ["row", "method", "sparsity", "seed", "value"]]


def _draw_figures(spec: TableSpec, preset: Preset, runs: Any, out_dir: Path) -> list[Path]:
    """The figures of :mod:`moduli.figures` for this table (matplotlib and seaborn: only now)."""
    from .. import figures

    fig_dir = out_dir / "figures"
    first = f"{preset.sparsities[0]:g}"
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        (figures.error_vs_sparsity, (_curve_frame(spec, runs), fig_dir, spec.metric)),
        (figures.inhibitor_profiles, (fig_dir,)),
    ]
    moduli_run = _first_finished(runs, "torus_dog", f"magnitude@{first}")
    random_run = _first_finished(runs, "torus_dog", f"random@{first}")
    if moduli_run and random_run:
        calls.append((figures.figure_1c, (moduli_run, random_run, fig_dir)))
    for rs in spec.run_sets:
        run = _first_finished(runs, rs.key, f"magnitude@{first}") if rs.learned else None
        if run:
            calls.append((figures.embedding_snapshots, (run, fig_dir / rs.key)))
            calls.append((figures.persistence_diagram, (run, fig_dir / rs.key)))
    written: list[Path] = []
    for fn, args in calls:
        name = fn.__name__
        try:
            result = fn(*args)
        except ImportError as exc:  # an optional dependency of one figure (e.g. ripser)
            _warn(f"figure {name} skipped: {exc}")
            continue
        except Exception as exc:  # a figure must not cost the tables; the failure is reported
            _warn(f"figure {name} failed: {type(exc).__name__}: {exc}")
            continue
        if isinstance(result, (list, tuple)):
            written.extend(Path(p) for p in result)
        elif isinstance(result, (str, Path)):
            written.append(Path(result))
    return written


def reproduce(
    table: str,
    preset: str,
    *,
    jobs: int | None = None,
    out_dir: str | Path | None = None,
    runs_dir: str | Path | None = None,
    executor: str = "local",
    slurm_options: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    quiet: bool = False,
    figures: bool = True,
    train_fn: TrainFn | None = None,
    wait: bool = False,
) -> ReproduceResult:
    """Reproduce ``table`` (navigation, language, adding, digits) at ``preset`` (smoke, cpu, paper or a YAML path).

    Prints the plan (runs, how many are finished, estimated GPU hours) to stderr before any
    run (always for the paper preset, else unless ``quiet``). ``dry_run`` stops after the plan.
    Outputs go to ``out_dir`` (default ``experiments/results/<table>/<preset>``), runs to
    ``runs_dir`` (default ``runs/reproduce/<table>/<preset>``). Raises ConfigError/DataError
    (one line) for a bad preset or config before anything runs. A run another process is
    training fails in the table (``RunLockedError``) unless ``wait``.
    """
    spec = table_spec(table)
    check_executor(1, executor)
    chosen = load_preset(table, preset)
    if jobs is None:
        jobs = chosen.jobs
    check_executor(jobs, executor)
    out = Path(out_dir) if out_dir is not None else default_out_dir(table, chosen.name)
    runs_root = Path(runs_dir) if runs_dir is not None else default_runs_dir(table, chosen.name)

    _, cells = build_cells(spec, chosen, runs_root, check_hardware=executor == "local")
    task_class(spec.task).check_data([c.config for c in cells])
    unique = {c.run_dir: c for c in cells}
    pending = {c.run_dir: c for c in cells if RunDir.finished_summary(c.config) is None}
    hours = estimate_gpu_hours([c.config for c in unique.values()])
    if not quiet or chosen.name == "paper":
        print(
            f"{table} / preset {chosen.name}: {len(unique)} runs ({len(chosen.seeds)} seeds), "
            f"{len(unique) - len(pending)} finished, {len(pending)} to train; "
            f"estimated {hours:.3g} GPU hours for all runs ({assumptions_text()})",
            file=sys.stderr,
        )
    result = ReproduceResult(table, chosen.name, out, runs_root, cells, len(pending), hours)
    if dry_run:
        return result
    if pending:
        train_planned([c.config for c in pending.values()], jobs, executor, train_fn, slurm_options, quiet=quiet,
                      wait=wait)
    runs, table_cells, written = _write_tables(spec, chosen, cells, out)
    if figures:
        written.extend(_draw_figures(spec, chosen, runs, out))
    result.runs, result.table_cells, result.files = runs, table_cells, tuple(written)
    return result
