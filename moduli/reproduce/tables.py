"""The paper's sparsity tables: which runs stand behind which rows and columns.

A table is a grid of *rows* (regularisers, grouped as in the paper) and *columns* (a target
sparsity and a pruning method). A row reads its numbers from a *run set*: a regulariser recipe
plus extra overrides, trained once per column and seed. Several rows may read the same run set
(the torus DoG row appears under controls, moduli spaces and inhibitors: one set of runs), and
one run set may feed two rows (a lottery-ticket run gives the pruned model and the
re-initialised model).

Columns, for each target sparsity s: ``magnitude@s`` (magnitude pruning, global or layerwise as
the preset's ``pruning.scope`` says), ``random@s``
(random masks with exactly magnitude's per-matrix counts) and ``moduli@s`` (distance-based
masks; only for geometric regularisers), plus an optional ``dense`` column (no pruning).

The language table follows the research code's language runs: diffusion and ripple are inverted
(``regularizer.invert``) and a permuted inverted diffusion control joins the permuted DoG; the
navigation and adding tables use plain diffusion and ripple.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.validate import suggest
from ..errors import ConfigError

__all__ = [
    "RunSet",
    "Row",
    "Column",
    "TableSpec",
    "TABLES",
    "NO_REG",
    "READINGS",
    "table_spec",
    "build_columns",
    "applies",
    "random_partner",
]

READINGS: tuple[str, ...] = ("final", "pruned")  # which model of a run a row reports
NO_REG = "none"  # run-set key of the unregularised control (the reference of the t-tests)


@dataclass(frozen=True)
class RunSet:
    """A regulariser (recipe files + overrides) trained for every applicable column and seed."""

    key: str  # identifier, also used in file names and CSVs, e.g. "torus_dog"
    recipes: tuple[str, ...]  # regulariser recipe YAML files, relative to the project root
    overrides: tuple[str, ...] = ()  # extra key=value overrides, e.g. ("pruning.lottery=true",)
    geometric: bool = True  # the penalty uses neuron positions: the moduli-pruning column applies
    lottery: bool = False  # a lottery-ticket run: first target sparsity only, never dense
    learned: bool = False  # the neuron embedding is learned (embedding figures apply)


@dataclass(frozen=True)
class Row:
    """One row of a table: a label in a group, reading one model of a run set."""

    group: str  # group heading, e.g. "controls"
    label: str  # row label, e.g. "Torus DoG"
    runs: str  # key of the RunSet the numbers come from
    reading: str = "final"  # "final": the run's result; "pruned": its pruned model before lottery re-init

    @property
    def source(self) -> str:
        """Identifier of the numbers this row shows (rows with equal sources show equal numbers)."""
        return self.runs if self.reading == "final" else f"{self.runs}/{self.reading}"


@dataclass(frozen=True)
class Column:
    """One column: a pruning method at a target sparsity (or the dense reference)."""

    key: str  # identifier, e.g. "magnitude@0.9" or "dense"
    method: str  # pruning.method: none, magnitude, random or moduli
    target: float  # pruning.target (0 for dense)
    label: str  # header text, e.g. "90% magnitude"


@dataclass(frozen=True)
class TableSpec:
    """Definition of one reproduced table."""

    name: str  # table name on the command line: navigation, language, adding or digits
    task: str  # the task every run trains
    metric: str  # what the numbers are, with unit, e.g. "decoding error (cm)"
    decimals: int  # digits after the decimal point in Markdown/LaTeX
    default_sparsities: tuple[float, ...]  # the paper's target sparsities for this table
    run_sets: tuple[RunSet, ...]  # every run set the rows read
    rows: tuple[Row, ...]  # rows in display order
    note: str = ""  # extra caption text (e.g. a baseline)

    def run_set(self, key: str) -> RunSet:
        """The run set called ``key``."""
        for rs in self.run_sets:
            if rs.key == key:
                return rs
        raise KeyError(f"table {self.name} has no run set {key!r}")


def _recipe(name: str) -> tuple[str, ...]:
    return (f"configs/regularizer/{name}.yaml",)


_TORUS = RunSet("torus_dog", _recipe("torus_dog"))
_LOTTERY_RUNS = RunSet("lottery", _recipe("torus_dog"), ("pruning.lottery=true",), lottery=True)
_COMMON_RUN_SETS: tuple[RunSet, ...] = (
    _TORUS,
    RunSet(NO_REG, _recipe("none"), geometric=False),
    RunSet("l1", _recipe("l1"), geometric=False),
    RunSet("mean_matched_l1", _recipe("mean_matched_l1"), geometric=False),
    RunSet("permuted_dog", _recipe("permuted_dog")),
    RunSet("circle_dog", _recipe("circle_dog")),
    RunSet("sphere_dog", _recipe("sphere_dog")),
    RunSet("klein_dog", _recipe("klein_dog")),
    RunSet("torus6_dog", _recipe("torus6_dog")),
    RunSet("torus_diffusion", _recipe("torus_diffusion")),
    RunSet("torus_ripple", _recipe("torus_ripple")),
    _LOTTERY_RUNS,
)
_LEARNED_RUN_SETS: tuple[RunSet, ...] = tuple(
    RunSet(f"learned_{name}", _recipe(f"learned_{name}"), learned=True) for name in ("r3", "r9", "torus", "s3")
)
# The language runs of the research code use diffusion and ripple inverted (f -> max f - f over the
# coefficient matrix) and add a permuted (inverted) diffusion control.
_INVERTED = ("regularizer.invert=true",)
_LANGUAGE_RUN_SETS: tuple[RunSet, ...] = tuple(
    rs for rs in _COMMON_RUN_SETS if rs.key not in ("torus_diffusion", "torus_ripple", _LOTTERY_RUNS.key)
) + (
    RunSet("permuted_inverted_diffusion", _recipe("torus_diffusion"), _INVERTED + ("regularizer.permute=true",)),
    RunSet("inverted_diffusion", _recipe("torus_diffusion"), _INVERTED),
    RunSet("inverted_ripple", _recipe("torus_ripple"), _INVERTED),
    _LOTTERY_RUNS,
)

_CONTROLS = "controls"
_SPACES = "moduli spaces (DoG)"
_INHIBITORS = "inhibitors on the torus"
_LOTTERY = "lottery ticket (torus DoG, first target only)"
_LEARNED = "learned embeddings (DoG)"

_COMMON_ROWS: tuple[Row, ...] = (
    Row(_CONTROLS, "Torus DoG", "torus_dog"),
    Row(_CONTROLS, "No reg.", NO_REG),
    Row(_CONTROLS, "L1", "l1"),
    Row(_CONTROLS, "Mean-matched L1", "mean_matched_l1"),
    Row(_CONTROLS, "Perm. DoG", "permuted_dog"),
    Row(_SPACES, "Torus", "torus_dog"),
    Row(_SPACES, "Circle", "circle_dog"),
    Row(_SPACES, "Sphere", "sphere_dog"),
    Row(_SPACES, "Klein", "klein_dog"),
    Row(_SPACES, "6-Torus", "torus6_dog"),
    Row(_INHIBITORS, "DoG", "torus_dog"),
    Row(_INHIBITORS, "Diffusion", "torus_diffusion"),
    Row(_INHIBITORS, "Ripple", "torus_ripple"),
    Row(_LOTTERY, "Pruned model", "lottery", "pruned"),
    Row(_LOTTERY, "Re-initialised, same mask", "lottery", "final"),
)
_LANGUAGE_ROWS: tuple[Row, ...] = (
    Row(_CONTROLS, "Torus DoG", "torus_dog"),
    Row(_CONTROLS, "No reg.", NO_REG),
    Row(_CONTROLS, "L1", "l1"),
    Row(_CONTROLS, "Mean-matched L1", "mean_matched_l1"),
    Row(_CONTROLS, "Perm. DoG", "permuted_dog"),
    Row(_CONTROLS, "Perm. inv. diffusion", "permuted_inverted_diffusion"),
    Row(_SPACES, "Torus", "torus_dog"),
    Row(_SPACES, "Circle", "circle_dog"),
    Row(_SPACES, "Sphere", "sphere_dog"),
    Row(_SPACES, "Klein", "klein_dog"),
    Row(_SPACES, "6-Torus", "torus6_dog"),
    Row(_INHIBITORS, "DoG", "torus_dog"),
    Row(_INHIBITORS, "Inv. diffusion", "inverted_diffusion"),
    Row(_INHIBITORS, "Inv. ripple", "inverted_ripple"),
    Row(_LOTTERY, "Pruned model", "lottery", "pruned"),
    Row(_LOTTERY, "Re-initialised, same mask", "lottery", "final"),
)
_LEARNED_ROWS: tuple[Row, ...] = (
    Row(_LEARNED, "R^3", "learned_r3"),
    Row(_LEARNED, "R^9", "learned_r9"),
    Row(_LEARNED, "Torus", "learned_torus"),
    Row(_LEARNED, "S^3", "learned_s3"),
)

TABLES: dict[str, TableSpec] = {
    "navigation": TableSpec(
        name="navigation",
        task="navigation",
        metric="decoding error (cm)",
        decimals=1,
        default_sparsities=(0.9, 0.98),
        run_sets=_COMMON_RUN_SETS,
        rows=_COMMON_ROWS,
    ),
    "language": TableSpec(
        name="language",
        task="language",
        metric="test perplexity",
        decimals=1,
        default_sparsities=(0.9,),
        run_sets=_LANGUAGE_RUN_SETS,
        rows=_LANGUAGE_ROWS,
        note="Inv. diffusion and Inv. ripple use max f - f (the maximum over the coefficient matrix) with "
        "f = d^2 and f = 50 + 50 cos(2d), as the research code's language runs; Perm. inv. diffusion shuffles "
        "the inverted diffusion coefficients.",
    ),
    "adding": TableSpec(
        name="adding",
        task="adding",
        metric="mean squared error",
        decimals=4,
        default_sparsities=(0.95,),
        run_sets=_COMMON_RUN_SETS + _LEARNED_RUN_SETS,
        rows=_COMMON_ROWS + _LEARNED_ROWS,
        note="Baseline: always predicting 1 gives MSE 1/6 = 0.1667.",
    ),
    # not in the paper: the same rows on a small classification task (moduli.tasks.digits)
    "digits": TableSpec("digits", "digits", "test error rate", 3, (0.9,), _COMMON_RUN_SETS, _COMMON_ROWS),
}


def table_spec(name: str) -> TableSpec:
    """The :class:`TableSpec` called ``name`` (navigation, language, adding or digits)."""
    if name not in TABLES:
        raise ConfigError(f"preset error: unknown table {name!r}; allowed: {', '.join(TABLES)}{suggest(str(name), TABLES)}")
    return TABLES[name]


def _percent(target: float) -> str:
    text = f"{100 * target:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def build_columns(sparsities: tuple[float, ...], dense: bool) -> tuple[Column, ...]:
    """Columns for the target ``sparsities`` (in order): magnitude, random, moduli; dense first if asked."""
    columns = [Column("dense", "none", 0.0, "dense")] if dense else []
    for s in sparsities:
        columns.extend(
            Column(f"{method}@{s:g}", method, float(s), f"{_percent(s)} {method}")
            for method in ("magnitude", "random", "moduli")
        )
    return tuple(columns)


def applies(run_set: RunSet, column: Column, first_target: float) -> bool:
    """Whether ``run_set`` is trained for ``column`` (else the cell shows n/a)."""
    if column.method == "none":
        return not run_set.lottery
    if column.method == "moduli" and not run_set.geometric:
        return False
    if run_set.lottery and column.target != first_target:
        return False
    return True


def random_partner(column: Column) -> str | None:
    """Key of the random-pruning column at ``column``'s sparsity (None for dense and random itself)."""
    if column.method in ("none", "random"):
        return None
    return f"random@{column.target:g}"
