"""Shared look and file output of the figures: seaborn style, headless figures, PNG + PDF.

Figures are built as ``matplotlib.figure.Figure`` objects (no pyplot), so nothing depends on or
changes the process's interactive backend; saving renders with the Agg (PNG) and PDF backends.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from ..atomic import atomic_write_bytes

__all__ = ["FORMATS", "style", "new_figure", "save_figure", "check_out_dir", "check_name"]

FORMATS: tuple[str, ...] = ("png", "pdf")  # every figure is written in these formats, in this order
PNG_DPI = 150  # raster resolution of the PNG files
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@contextmanager
def style() -> Iterator[None]:
    """Seaborn's whitegrid style and paper context for the figures built inside (rcParams restored after)."""
    import seaborn as sns

    params: dict[str, Any] = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper")}
    params["pdf.fonttype"] = 42  # embed TrueType fonts: editable text in the PDF
    with matplotlib.rc_context(params):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (4.0, 3.5), **subplot_kw: Any):
    """A constrained-layout Figure with an (nrows, ncols) array of axes; sizes in inches per panel."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def save_figure(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``fig`` to ``<out_dir>/<name>.png`` and ``.pdf`` atomically; returns the two paths."""
    paths = []
    for fmt in FORMATS:
        buffer = io.BytesIO()
        # No creation date / software stamp: the same figure gives the same bytes on every run.
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=metadata)
        paths.append(atomic_write_bytes(out_dir / f"{name}.{fmt}", buffer.getvalue()))
    return paths


def check_out_dir(out_dir: Any) -> Path:
    """``out_dir`` as a Path (created later, when the files are written); rejects non-paths and files."""
    if not isinstance(out_dir, (str, Path)):
        raise TypeError(f"out_dir must be a str or pathlib.Path (a directory for the figures), got {type(out_dir).__name__}")
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out_dir {path} exists and is not a directory; pass a directory for the figures")
    return path


def check_name(name: Any) -> str:
    """A figure file stem: letters, digits, '_', '-', '.' (no directories)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name must be a file stem of letters, digits, '_', '-' or '.', starting with a letter or digit; got {name!r}"
        )
    return name
