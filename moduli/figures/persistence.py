"""Persistent homology (ripser) of neuron positions under the manifold's own distance.

Needs the optional ``ripser`` package (``pip install "moduli[tda]"``), imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DependencyError
from ..manifolds import Euclidean, Manifold, get_manifold
from ..run_dir import RunDir
from ..checks import check_int
from ._runs import as_run, check_layer, final_state, run_label, run_manifold
from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["persistence", "persistence_diagram", "require_ripser"]


def require_ripser():
    """The ``ripser`` function, or a DependencyError telling how to install it."""
    try:
        from ripser import ripser
    except ImportError as exc:
        raise DependencyError(
            'persistence diagrams need the optional package ripser; install it with pip install "moduli[tda]"'
        ) from exc
    return ripser


def _as_points(points: Any) -> torch.Tensor:
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(points)
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor or numpy array of shape (N, coord_dim), got {type(points).__name__}")
    if points.dim() != 2 or points.shape[0] < 2:
        raise ValueError(f"points must have shape (N, coord_dim) with N >= 2, got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"points must have a floating dtype, got {points.dtype}; convert with .float()")
    return points.detach().cpu()


def _as_manifold(manifold: Manifold | str | None, coord_dim: int) -> Manifold:
    if manifold is None:
        return Euclidean(coord_dim)
    if isinstance(manifold, str):
        return get_manifold(manifold)
    if isinstance(manifold, Manifold):
        return manifold
    raise TypeError(f"manifold must be a Manifold, a registered name or None (Euclidean), got {type(manifold).__name__}")


def persistence(points: Any, manifold: Manifold | str | None = None, maxdim: int = 1) -> list[np.ndarray]:
    """Persistence diagrams of ``points`` (N, coord_dim) under ``manifold``'s geodesic distance.

    ``manifold`` defaults to Euclidean space of the points' dimension. Returns one (k, 2) array
    of (birth, death) pairs per homology dimension 0..maxdim (death ``inf`` for classes that
    never die), in the manifold's distance units.
    """
    points = _as_points(points)
    manifold = _as_manifold(manifold, points.shape[1])
    maxdim = check_int(maxdim, "maxdim (highest homology dimension)", 0, 3)
    manifold.check_points(points)  # in the points' own dtype: its tolerance applies
    ripser = require_ripser()
    distances = manifold.pairwise_distance(manifold.project(points.to(torch.float64))).numpy()
    distances = 0.5 * (distances + distances.T)  # exact symmetry; rounding can differ by an ulp
    np.fill_diagonal(distances, 0.0)
    return [np.asarray(d, dtype=np.float64) for d in ripser(distances, maxdim=maxdim, distance_matrix=True)["dgms"]]


def _run_points(run: RunDir, layer: int) -> tuple[torch.Tensor, Manifold]:
    manifold = run_manifold(run)
    if manifold is None:
        raise ValueError(f"run {run.path.name} has no neuron positions (regularizer.kind: none); pass a run with an embedding")
    return final_state(run)[f"rnn.regularizers.{layer}.embedding"], manifold


def persistence_diagram(
    points_or_run: Any,
    out_dir: str | Path,
    manifold: Manifold | str | None = None,
    maxdim: int = 1,
    layer: int = 0,
    name: str = "persistence",
) -> list[Path]:
    """Persistence diagram and barcode of neuron positions, H0..H``maxdim``.

    ``points_or_run``: an (N, coord_dim) tensor/array (on ``manifold``, Euclidean by default) or
    a run (RunDir or path): its final neuron positions of ``layer`` on the run's manifold (then
    ``manifold`` must be None). Returns ``<out_dir>/<name>.png`` and ``.pdf``.
    """
    out = check_out_dir(out_dir)
    name = check_name(name)
    if isinstance(points_or_run, (RunDir, str, Path)):
        if manifold is not None:
            raise ValueError("manifold is taken from the run's config; leave it None when passing a run")
        run = as_run(points_or_run, "points_or_run")
        points, manifold = _run_points(run, check_layer(run, layer))
        source = f"final positions of layer {layer}: {run_label(run)}"
    else:
        points = _as_points(points_or_run)
        manifold = _as_manifold(manifold, points.shape[1])
        source = f"{points.shape[0]} points"
    diagrams = persistence(points, manifold, maxdim)

    finite = np.concatenate([d[np.isfinite(d[:, 1])] for d in diagrams if len(d)] or [np.zeros((0, 2))])
    top = float(finite.max()) if finite.size else 1.0
    infinity = 1.1 * top if top > 0 else 1.0  # where never-dying classes are drawn
    with style():
        fig, axes = new_figure(1, 2, panel_size=(4.4, 4.0))
        diagram_ax, barcode_ax = axes[0]
        diagram_ax.plot([0, infinity], [0, infinity], color="0.5", lw=1.0)
        diagram_ax.axhline(infinity, color="0.5", ls=":", lw=1.0)
        diagram_ax.text(0.02 * infinity, infinity, "inf", va="bottom", fontsize="small", color="0.4")
        row = 0
        for dim, diagram in enumerate(diagrams):
            deaths = np.where(np.isfinite(diagram[:, 1]), diagram[:, 1], infinity)
            life = deaths - diagram[:, 0]
            diagram_ax.scatter(diagram[:, 0], deaths, s=18, color=f"C{dim}", label=f"H{dim} ({len(diagram)})", zorder=3)
            for k in np.argsort(-life, kind="stable"):
                barcode_ax.plot([diagram[k, 0], deaths[k]], [row, row], color=f"C{dim}", lw=2.0)
                row += 1
            row += 1  # gap between dimensions
        diagram_ax.set_xlabel("birth (distance)")
        diagram_ax.set_ylabel("death (distance)")
        diagram_ax.set_aspect("equal", adjustable="datalim")
        diagram_ax.legend(loc="lower right", fontsize="small")
        diagram_ax.set_title("persistence diagram", fontsize="medium")
        barcode_ax.set_xlabel("distance")
        barcode_ax.set_yticks([])
        barcode_ax.invert_yaxis()
        barcode_ax.set_title("barcode (longest first per dimension)", fontsize="medium")
        fig.suptitle(f"Persistent homology of {source}\n{manifold!r} distance, ripser", fontsize="medium")
        return save_figure(fig, out, name)
