"""Learned neuron positions over training: one panel per saved epoch (``embeddings/epoch_*.pt``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from ..manifolds import Euclidean, KleinBottle, Manifold, Torus
from ..run_dir import RunDir
from ..checks import check_int
from ._runs import as_run, check_layer, run_label, run_manifold
from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["load_embedding_snapshots", "select_snapshots", "planar_coordinates", "embedding_snapshots"]

_SNAPSHOT = re.compile(r"epoch_(\d+)\.pt")


def load_embedding_snapshots(run: RunDir | str | Path, layer: int = 0) -> list[tuple[int, torch.Tensor]]:
    """``[(epoch, positions (N, coord_dim))]`` of layer ``layer``, sorted by epoch, from the run's
    ``embeddings/epoch_XXXX.pt`` files; a run without a learned embedding raises a ValueError."""
    run = as_run(run)
    layer = check_layer(run, layer)
    if not run.config.regularizer.learn_embedding:
        raise ValueError(
            f"run {run.path.name} has no learned embedding (regularizer.learn_embedding is false); pass a run "
            "trained with a learned embedding, e.g. configs/regularizer/learned_torus.yaml"
        )
    directory = run.embeddings_path
    files = sorted(
        (int(m.group(1)), f) for f in directory.glob("epoch_*.pt") if (m := _SNAPSHOT.fullmatch(f.name))
    ) if directory.is_dir() else []
    if not files:
        raise ValueError(f"run {run.path.name} has no embedding snapshots in {directory}; train it for at least one epoch")
    snapshots = []
    for epoch, path in files:
        points = torch.load(path, map_location="cpu", weights_only=True)
        if str(layer) not in points:
            raise ValueError(f"{path} holds layers {sorted(points)}, not layer {layer}")
        snapshots.append((epoch, points[str(layer)].detach().to(torch.float64)))
    return snapshots


def select_snapshots(count: int, max_panels: int) -> list[int]:
    """Indices of at most ``max_panels`` of ``count`` snapshots, evenly spaced, first and last included."""
    count = check_int(count, "count", 1)
    max_panels = check_int(max_panels, "max_panels", 1)
    if count <= max_panels:
        return list(range(count))
    if max_panels == 1:
        return [count - 1]
    return sorted({round(i * (count - 1) / (max_panels - 1)) for i in range(max_panels)})


def planar_coordinates(manifold: Manifold, snapshots: list[torch.Tensor]) -> tuple[list[np.ndarray], str]:
    """2-D coordinates (N, 2) of each snapshot and a description of the projection.

    2-torus / Klein bottle: the representative in ``[0, period)^2``. Euclidean R^d with d > 2: a
    PCA to 2-D fitted on all snapshots together (one projection, so panels are comparable), by
    numpy SVD, signs fixed so that each component's largest loading is positive. Any other
    space: its first two coordinates.
    """
    if manifold.coord_dim < 2:
        raise ValueError(f"cannot draw positions on {manifold!r} in 2-D: it has {manifold.coord_dim} coordinate(s)")
    if isinstance(manifold, (Torus, KleinBottle)) and manifold.coord_dim == 2:
        return [manifold.project(s).numpy() for s in snapshots], f"fundamental domain [0, {manifold.period:g})^2"
    if isinstance(manifold, Euclidean) and manifold.dim > 2:
        stacked = np.concatenate([s.numpy() for s in snapshots], axis=0)
        mean = stacked.mean(axis=0)
        _, singular, vt = np.linalg.svd(stacked - mean, full_matrices=False)
        components = vt[:2]
        components *= np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])[:, None]
        explained = (singular[:2] ** 2).sum() / max((singular**2).sum(), np.finfo(float).tiny)
        return ([(s.numpy() - mean) @ components.T for s in snapshots],
                f"PCA of R^{manifold.dim} to 2-D over all snapshots ({100 * explained:.0f}% of the variance)")
    if manifold.coord_dim == 2:
        return [s.numpy() for s in snapshots], "coordinates"
    return [s.numpy()[:, :2] for s in snapshots], f"first two of {manifold.coord_dim} coordinates"


def embedding_snapshots(
    run: RunDir | str | Path, out_dir: str | Path, layer: int = 0, max_panels: int = 6, name: str = "embedding_snapshots"
) -> list[Path]:
    """Panels of the learned neuron positions of ``layer`` at up to ``max_panels`` saved epochs
    (evenly spaced, first and last included); neurons coloured by index so they can be followed.

    Returns ``<out_dir>/<name>.png`` and ``.pdf``.
    """
    out = check_out_dir(out_dir)
    name = check_name(name)
    run = as_run(run)
    max_panels = check_int(max_panels, "max_panels", 1)
    snapshots = load_embedding_snapshots(run, layer)
    chosen = [snapshots[i] for i in select_snapshots(len(snapshots), max_panels)]
    manifold = run_manifold(run)
    coords, projection = planar_coordinates(manifold, [points for _, points in chosen])
    n = coords[0].shape[0]
    periodic = isinstance(manifold, (Torus, KleinBottle)) and manifold.coord_dim == 2
    if periodic:
        p = manifold.period
        xlim = ylim = (0.0, p)
    else:
        stacked = np.concatenate(coords)
        pad = 0.05 * float(np.ptp(stacked, axis=0).max() or 1.0)
        xlim = (float(stacked[:, 0].min()) - pad, float(stacked[:, 0].max()) + pad)
        ylim = (float(stacked[:, 1].min()) - pad, float(stacked[:, 1].max()) + pad)
    ncols = min(len(chosen), 3)
    nrows = -(-len(chosen) // ncols)
    with style():
        fig, axes = new_figure(nrows, ncols, panel_size=(3.3, 3.3))
        size = float(np.clip(1500.0 / n, 3.0, 30.0))
        for ax, (epoch, _), xy in zip(axes.flat, chosen, coords):
            ax.scatter(xy[:, 0], xy[:, 1], c=np.arange(n), cmap="viridis", s=size, edgecolors="none")
            if periodic:
                ax.plot([0, p, p, 0, 0], [0, 0, p, p, 0], color="0.3", lw=1.0)
            ax.update_datalim([(xlim[0], ylim[0]), (xlim[1], ylim[1])])
            ax.autoscale_view()
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(f"after epoch {epoch + 1}", fontsize="medium")
        for ax in list(axes.flat)[len(chosen):]:
            ax.set_visible(False)
        fig.suptitle(
            f"Learned neuron positions of layer {layer}: {run_label(run)}\n{manifold!r}, {projection}; "
            f"colour = neuron index (N = {n})",
            fontsize="medium",
        )
        return save_figure(fig, out, name)
