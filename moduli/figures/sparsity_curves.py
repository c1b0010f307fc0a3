"""Error versus sparsity: one line per regulariser with a band of one standard deviation over seeds,
one facet per pruning method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["REQUIRED_COLUMNS", "METHOD_ORDER", "facet_order", "error_vs_sparsity"]

REQUIRED_COLUMNS: tuple[str, ...] = ("row", "method", "sparsity", "seed", "value")  # one row per run
METHOD_ORDER: tuple[str, ...] = ("magnitude", "moduli", "random")  # facet order of the known methods


def facet_order(methods: Any) -> list[str]:
    """Pruning methods as facets: the known ones in METHOD_ORDER, then any others sorted."""
    present = list(dict.fromkeys(str(m) for m in methods))
    return [m for m in METHOD_ORDER if m in present] + sorted(m for m in present if m not in METHOD_ORDER)


def _check_frame(frame: Any) -> None:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame with columns {list(REQUIRED_COLUMNS)}, got {type(frame).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks the column(s) {missing}; it needs {list(REQUIRED_COLUMNS)} (one row per run)")
    if frame.empty:
        raise ValueError("frame has no rows; pass one row per finished run")
    for column in ("sparsity", "value"):
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            raise TypeError(f"frame column {column!r} must be numeric, got dtype {frame[column].dtype}")
    sparsity = frame["sparsity"].to_numpy(dtype=float)
    if not np.all(np.isfinite(sparsity)) or sparsity.min() < 0 or sparsity.max() > 1:
        raise ValueError("frame column 'sparsity' must hold fractions in [0, 1] (e.g. 0.9 for 90%), without NaN")
    if frame[["row", "method", "seed"]].isna().any().any():
        raise ValueError("frame columns 'row', 'method' and 'seed' must not hold missing values")


def error_vs_sparsity(
    frame: Any, out_dir: str | Path, metric_label: str, name: str = "error_vs_sparsity"
) -> list[Path]:
    """Mean ``value`` over seeds against sparsity, one line per regulariser (``row``) with a band of
    +-1 standard deviation over seeds (seaborn ``errorbar="sd"``), one facet per pruning ``method``.

    ``frame``: one row per run with columns ``row``, ``method``, ``sparsity`` (fraction in [0, 1]),
    ``seed``, ``value``. Non-finite values (diverged runs) are left out of the means and counted in
    the facet title. ``metric_label`` labels the y axis, e.g. "decoding error (cm)".
    Returns ``<out_dir>/<name>.png`` and ``.pdf``.
    """
    import seaborn as sns

    out = check_out_dir(out_dir)
    name = check_name(name)
    _check_frame(frame)
    if not isinstance(metric_label, str) or not metric_label.strip():
        raise ValueError(f"metric_label must be a non-empty str naming the metric and its unit, got {metric_label!r}")
    data = frame.loc[:, list(REQUIRED_COLUMNS)].copy()
    data["row"] = data["row"].astype(str)
    data["method"] = data["method"].astype(str)
    data["sparsity_pct"] = 100.0 * data["sparsity"].astype(float)
    finite = np.isfinite(data["value"].to_numpy(dtype=float))
    rows = list(dict.fromkeys(data["row"]))
    methods = facet_order(data["method"])
    palette = dict(zip(rows, sns.color_palette("colorblind", len(rows))))
    with style():
        fig, axes = new_figure(1, len(methods), panel_size=(4.2, 3.6), sharey=True)
        for ax, method in zip(axes[0], methods):
            in_facet = (data["method"] == method).to_numpy()
            subset = data[in_facet & finite]
            if not subset.empty:
                sns.lineplot(data=subset, x="sparsity_pct", y="value", hue="row", hue_order=rows, palette=palette,
                             errorbar="sd", estimator="mean", marker="o", ax=ax, legend=False)
            dropped = int((in_facet & ~finite).sum())
            note = f"\n({dropped} non-finite run(s) left out)" if dropped else ""
            ax.set_title(f"{method} pruning{note}", fontsize="medium")
            ax.set_xlabel("sparsity (%)")
            ax.set_ylabel(metric_label)
        handles = [Line2D([], [], color=palette[r], marker="o", label=r) for r in rows]
        fig.legend(handles=handles, title="regulariser", loc="outside right center", frameon=False)
        seeds = data.groupby(["row", "method", "sparsity"])["seed"].nunique()
        count = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
        fig.suptitle(f"{metric_label} against sparsity: mean over {count} seed(s) per point, band = 1 s.d.",
                     fontsize="medium")
        return save_figure(fig, out, name)
