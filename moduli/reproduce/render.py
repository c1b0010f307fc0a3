"""Writing a table as Markdown, LaTeX and CSV.

Every output is a pure function of the aggregated numbers, the preset and the runs' configs and
summaries (no timestamps, stable row and column order), so regenerating a table from the same
runs gives byte-identical files. Numbers show as ``mean (std)``; ``*`` marks p < 0.05 against
No reg. in the same column and ``†`` p < 0.05 against random pruning in the same row; a cell
with failed or missing runs adds ``[n/seeds seeds; k failed]``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import yaml

from ..config import RunConfig
from ..inhibitors import DoG
from ..tasks.registry import task_class
from .presets import PROJECT_ROOT, Preset
from .statistics import ALPHA, DDOF, TEST_NAME
from .tables import Column, TableSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["TableText", "scale_text", "mean_matched_text", "caption_text", "cell_text", "render_markdown", "render_latex", "to_csv"]

_FLOAT_FORMAT = "%.10g"  # CSV number format: fixed, so that reruns give identical bytes


@dataclass(frozen=True)
class TableText:
    """Everything a rendered table states besides its numbers."""

    spec: TableSpec  # which table
    preset: Preset  # the preset that produced it
    columns: tuple[Column, ...]  # columns in order
    caption: str  # the caption (plain text, one paragraph)


def scale_text(cfg: RunConfig) -> str:
    """The sizes and run length of ``cfg`` in one line, e.g. ``hidden 32, batch 8, 2 epochs x 5 steps, ...``."""
    m, t, o = cfg.model, cfg.train, cfg.optim
    steps = "a full pass" if t.steps_per_epoch is None else f"{t.steps_per_epoch} steps"
    parts = [f"hidden {m.hidden_size}" + (f" x {m.num_layers} layers" if m.num_layers > 1 else "")]
    parts.extend(task_class(cfg.task).scale_text(cfg))
    if m.recurrent_init != "default":
        scale = f" x {m.recurrent_init_scale:g}" if m.recurrent_init_scale != 1.0 else ""
        parts.append(f"{m.recurrent_init.replace('_', '-')}{scale} W_hh initialisation")
    stabilising = f" + {t.stabilise_epochs} stabilising" if t.stabilise_epochs else ""
    parts.append(
        f"batch {t.batch_size}, {t.epochs}{stabilising} epoch{'s' if t.epochs + t.stabilise_epochs != 1 else ''} "
        f"x {steps}, {o.name} lr {o.lr:g}"
    )
    parts.append(f"regulariser strength {cfg.regularizer.strength:g}, {cfg.pruning.schedule} pruning schedule")
    return ", ".join(parts)


def _gaussian_starts(spec: TableSpec) -> list[tuple[str, float]]:
    """(run set, regularizer.embedding_init_scale) of the learned run sets whose recipe sets a scale."""
    out = []
    for rs in spec.run_sets:
        if not rs.learned:
            continue
        scale = 1.0
        for recipe in rs.recipes:
            data = yaml.safe_load((PROJECT_ROOT / recipe).read_text(encoding="utf-8")) or {}
            scale = (data.get("regularizer") or {}).get("embedding_init_scale", scale)
        if scale != 1.0:
            out.append((rs.key, float(scale)))
    return out


def mean_matched_text(cfg: RunConfig) -> str:
    """What the mean-matched L1 constant of ``cfg`` is (``regularizer.mean_matched``), with its value."""
    n, dog = cfg.model.hidden_size, DoG()
    plain = dog.plain_torus_mean(n)
    if cfg.regularizer.mean_matched == "plain_dog":
        return (
            "Mean-matched L1: every coefficient is the mean of the plain (non-inverted) DoG over a random "
            f"2-torus embedding of the {n} neurons, as the research code computes it (expected {plain:.2f}; "
            "regularizer.mean_matched = plain_dog)."
        )
    return (
        "Mean-matched L1: every coefficient is the mean of the inverted DoG coefficients the torus DoG penalty "
        f"applies (expected {dog.peak_value - plain:.2f} at N = {n}; regularizer.mean_matched = applied)."
    )


# pruning.scope -> (what the target sparsity is, what magnitude pruning does)
_SCOPE_TEXT: dict[str, tuple[str, str]] = {
    "global": ("global sparsity", "global magnitude pruning: one threshold over all pruned matrices"),
    "layerwise": ("sparsity of every pruned matrix", "layerwise magnitude pruning: each matrix pruned to the target"),
}


def caption_text(spec: TableSpec, preset: Preset, cfg: RunConfig, runs: pandas.DataFrame) -> str:
    """The caption: metric, preset and scale, columns, statistics, failures, data and notes."""
    seeds = ", ".join(str(s) for s in preset.seeds)
    parts = [
        f"{spec.name.capitalize()}: {spec.metric}, mean (sample standard deviation, ddof={DDOF}) over seeds {seeds}; lower is better.",
        f"Preset {preset.name}" + (f" ({preset.description})" if preset.description else "") + f": {scale_text(cfg)}.",
        f"Columns: target {_SCOPE_TEXT[cfg.pruning.scope][0]} and pruning method: magnitude "
        f"({_SCOPE_TEXT[cfg.pruning.scope][1]}), random "
        "(random masks with exactly the per-matrix sparsity of magnitude pruning), moduli (distance-based masks "
        "on the recurrent matrices; n/a without a geometric regulariser)"
        + ("; dense: no pruning" if preset.dense else "")
        + ". The lottery ticket runs at the first target sparsity only; both of its rows come from the same runs.",
        f"* p < {ALPHA:g} against No reg. in the same column, † p < {ALPHA:g} against random pruning in the same row: "
        f"{TEST_NAME}.",
        "Failed (diverged) runs are excluded from the statistics and shown as [finished/seeds seeds; k failed].",
    ]
    if any(rs.key == "mean_matched_l1" for rs in spec.run_sets):
        parts.append(mean_matched_text(cfg))
    reg = cfg.regularizer
    if reg.extra_l1 > 0:
        parts.append(
            f"Every run, No reg. included, also adds {reg.extra_l1:g} x the mean |w| of the embedding, the decoder "
            "and every input-to-hidden matrix (regularizer.extra_l1)."
        )
    if any(rs.learned for rs in spec.run_sets):
        optimiser = (
            f"the weights' {cfg.optim.name} at lr {cfg.optim.lr:g}, clipped with the weights"
            if reg.embedding_optimizer == "shared" else f"RiemannianAdam at lr {reg.embedding_lr:g}"
        )
        decay = f", gradient x {reg.embedding_grad_decay:g}^epoch" if reg.embedding_grad_decay != 1.0 else ""
        frozen = ", frozen during the stabilising epochs" if cfg.train.stabilise_epochs else ""
        starts = "; ".join(f"{key} starts at {scale:g} x N(0, 1)" for key, scale in _gaussian_starts(spec))
        parts.append(f"Learned positions: {optimiser}{decay}{frozen}" + (f"; {starts}." if starts else "."))
    parts.extend(task_class(spec.task).caption_notes(cfg, preset.seeds, runs))
    if spec.note:
        parts.append(spec.note)
    return " ".join(parts)


def _number(value: float, decimals: int) -> str:
    return "-" if not math.isfinite(value) else f"{value:.{decimals}f}"


def cell_text(rec: dict[str, Any], decimals: int, star: str, dagger: str) -> str:
    """``mean (std)`` with significance marks and a failure note, for one aggregated cell."""
    n, failed, missing, seeds = int(rec["n"]), int(rec["failed"]), int(rec["missing"]), int(rec["seeds"])
    if n == 0:
        parts = ([f"{failed} failed"] if failed else []) + ([f"{missing} missing"] if missing else [])
        return f"no result [0/{seeds} seeds; {', '.join(parts)}]"
    text = f"{_number(rec['mean'], decimals)} ({_number(rec['std'], decimals)})"
    if rec["p_vs_noreg"] < ALPHA:
        text += star
    if rec["p_vs_random"] < ALPHA:
        text += dagger
    if failed or missing:
        notes = ([f"{failed} failed"] if failed else []) + ([f"{missing} missing"] if missing else [])
        text += f" [{n}/{seeds} seeds; {', '.join(notes)}]"
    return text


def _grid(text: TableText, cells: pandas.DataFrame, star: str, dagger: str) -> list[tuple[str, str, list[str]]]:
    """(group, label, cell texts) per table row, "n/a" where a column does not apply."""
    lookup = {(r["group"], r["label"], r["column"]): r for r in cells.to_dict("records")}
    out = []
    for row in text.spec.rows:
        texts = []
        for column in text.columns:
            rec = lookup.get((row.group, row.label, column.key))
            texts.append("n/a" if rec is None else cell_text(rec, text.spec.decimals, star, dagger))
        out.append((row.group, row.label, texts))
    return out


def render_markdown(text: TableText, cells: pandas.DataFrame) -> str:
    """The table as GitHub Markdown: a caption paragraph, then one table row per table row."""
    header = ["Group", "Regulariser"] + [c.label for c in text.columns]
    lines = [
        f"**Table ({text.spec.name}, preset {text.preset.name}).** {text.caption.replace('*', chr(92) + '*')}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * len(text.columns)) + "|",
    ]
    previous = None
    for group, label, texts in _grid(text, cells, "\\*", "†"):
        shown = group if group != previous else ""
        previous = group
        lines.append("| " + " | ".join([shown, label] + texts) + " |")
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}"}


def _latex_escape(text: str) -> str:
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    # R^3 -> $R^{3}$; any other ^ is printed as a caret
    escaped = re.sub(r"([A-Za-z])\^(\d+)|\^", lambda m: f"${m.group(1)}^{{{m.group(2)}}}$" if m.group(1) else r"\^{}", escaped)
    escaped = escaped.replace("†", r"$^{\dagger}$").replace("<", "$<$")
    return escaped


def render_latex(text: TableText, cells: pandas.DataFrame) -> str:
    """The table as a LaTeX ``table`` environment (booktabs rules)."""
    ncols = len(text.columns)
    caption = _latex_escape(text.caption).replace("* p", r"$^{*}$ p")
    lines = [
        r"% Generated by: moduli reproduce " + f"{text.spec.name} --preset {text.preset.name}; needs \\usepackage{{booktabs}}",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{" + caption + "}",
        r"\label{tab:" + f"{text.spec.name}-{text.preset.name}" + "}",
        r"\begin{tabular}{l" + "r" * ncols + "}",
        r"\toprule",
        "Regulariser & " + " & ".join(_latex_escape(c.label) for c in text.columns) + r" \\",
    ]
    previous = None
    for group, label, texts in _grid(text, cells, r"$^{*}$", r"$^{\dagger}$"):
        if group != previous:
            lines.append(r"\midrule")
            lines.append(r"\multicolumn{" + str(ncols + 1) + r"}{l}{\textit{" + _latex_escape(group) + r"}} \\")
            previous = group
        shown = [t if t.startswith(("n/a",)) else t.replace("[", "{[}").replace("]", "{]}") for t in texts]
        lines.append(_latex_escape(label) + " & " + " & ".join(shown) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(frame: pandas.DataFrame, prefix: dict[str, str], columns: Sequence[str]) -> str:
    """``frame`` (columns ``columns``) as CSV text, with constant ``prefix`` columns first."""
    out = frame.loc[:, list(columns)].copy()
    for i, (key, value) in enumerate(prefix.items()):
        out.insert(i, key, value)
    return out.to_csv(index=False, float_format=_FLOAT_FORMAT, lineterminator="\n")
