"""The inhibitors f(d) over distance, and the DoG coefficient over the torus and Klein bottle domains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..inhibitors import INHIBITORS, DoG, Inhibitor, get_inhibitor
from ..manifolds import KleinBottle, Manifold, Torus, get_manifold
from ..checks import check_real
from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["inhibitor_curves", "coefficient_grid", "inhibitor_profiles"]


def inhibitor_curves(max_distance: float = 7.0, samples: int = 400) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Distances ``d`` (samples,) in [0, max_distance] and ``{name: f(d)}`` for every registered inhibitor
    (registry defaults), in manifold distance units."""
    max_distance = check_real(max_distance, "max_distance", positive=True)
    d = torch.linspace(0.0, max_distance, samples, dtype=torch.float64)
    return d.numpy(), {name: get_inhibitor(name)(d).numpy() for name in INHIBITORS}


def coefficient_grid(
    manifold: Manifold, centre: tuple[float, float], inhibitor: Inhibitor | None = None, resolution: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients f(d(p, centre)) at the cell centres p of a (resolution, resolution) grid over
    ``[0, period)^2`` of a 2-torus or Klein bottle.

    Returns ``(values, axis)``: ``values[i, k]`` is the coefficient at ``(x, y) = (axis[k], axis[i])``
    (rows are y, as ``imshow(origin="lower")`` expects); ``axis`` has shape (resolution,).
    ``inhibitor`` defaults to ``DoG()``.
    """
    if not (isinstance(manifold, (Torus, KleinBottle)) and manifold.dim == 2):
        raise ValueError(f"coefficient_grid draws the square domain of a 2-torus or Klein bottle, got {manifold!r}")
    inhibitor = DoG() if inhibitor is None else inhibitor
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an int >= 2 (grid cells per side), got {resolution!r}")
    p = manifold.period
    axis = (torch.arange(resolution, dtype=torch.float64) + 0.5) * (p / resolution)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack((xx, yy), dim=-1)
    c = torch.tensor(centre, dtype=torch.float64)
    return inhibitor(manifold.distance(grid, c)).numpy(), axis.numpy()


def _profiles_figure(max_distance: float):
    d, curves = inhibitor_curves(max_distance)
    ncols = 3
    nrows = -(-len(curves) // ncols)
    fig, axes = new_figure(nrows, ncols, panel_size=(3.4, 2.8))
    for ax, (name, values) in zip(axes.flat, curves.items()):
        ax.plot(d, values, lw=2.0, color="C0")
        inhibitor = get_inhibitor(name)
        if isinstance(inhibitor, DoG):
            peak = inhibitor.peak_distance
            value = float(inhibitor(torch.tensor([peak], dtype=torch.float64))[0])
            ax.axvline(peak, color="C3", ls="--", lw=1.0)
            ax.plot([peak], [value], "o", color="C3", label=f"DoG peak: f = 0 at d = {peak:.3f}")
            ax.legend(loc="lower right", fontsize="small")
        params = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in inhibitor.to_config().items() if k != "name"]
        ax.set_title(f"{name}\n{', '.join(params) or 'no parameters'}", fontsize="small")
        ax.set_xlabel("distance d")
        ax.set_ylabel("coefficient f(d)")
        ax.set_xlim(0.0, max_distance)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    fig.suptitle("Inhibitors: penalty coefficient of a connection over the distance of its neurons")
    return fig


def _domains_figure():
    torus, klein = get_manifold("torus"), get_manifold("klein")
    p = torus.period
    centre = (0.12 * p, 0.27 * p)  # off-centre, so that the Klein bottle's mirrored image is visible
    fig, axes = new_figure(1, 2, panel_size=(4.4, 4.2))
    grids = [coefficient_grid(m, centre) for m in (torus, klein)]
    vmax = max(float(g.max()) for g, _ in grids)
    image = None
    for ax, manifold, (values, _) in zip(axes[0], (torus, klein), grids):
        image = ax.imshow(values, origin="lower", extent=(0.0, p, 0.0, p), cmap="magma", vmin=0.0, vmax=vmax,
                          interpolation="nearest")
        ax.plot(*centre, marker="+", color="cyan", ms=12, mew=2, label=f"centre ({centre[0]:g}, {centre[1]:g})")
        ax.grid(False)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        kind = "torus: (x, y) ~ (x + p, y) ~ (x, y + p)" if manifold is torus else "Klein bottle: (x, y) ~ (x + p, p - y)"
        ax.set_title(f"{kind}\np = {p:g}", fontsize="small")
    axes[0, 0].legend(loc="upper right", fontsize="small")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label="DoG coefficient f(d(point, centre))")
    fig.suptitle("DoG coefficient relative to one neuron over the fundamental domain")
    return fig


def inhibitor_profiles(out_dir: str | Path, max_distance: float = 7.0) -> list[Path]:
    """Two figures: every registered inhibitor f(d) for d in [0, max_distance] (DoG peak marked),
    and the DoG coefficient relative to a centre point over the torus and Klein bottle domains
    (the Klein panel shows the image mirrored across the x-edges).

    Returns ``inhibitor_profiles.png/.pdf`` and ``inhibitor_domains.png/.pdf`` under ``out_dir``.
    """
    out = check_out_dir(out_dir)
    max_distance = check_real(max_distance, "max_distance", positive=True)
    paths: list[Path] = []
    with style():
        paths += save_figure(_profiles_figure(max_distance), out, check_name("inhibitor_profiles"))
        paths += save_figure(_domains_figure(), out, check_name("inhibitor_domains"))
    return paths
