"""Figure 1c: the surviving incoming connections of one neuron, drawn over the neurons' positions.

For each of two runs (moduli-regularised with magnitude or moduli pruning, and random pruning)
all hidden neurons are drawn on the flat picture of their manifold, coloured by |W_hh[j, k]|,
the weight of the connection k -> j into the chosen neuron j; pruned (zero) connections are
hollow grey points. Local surviving connections show that sparsification respected the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import Normalize

from ..run_dir import RunDir
from ._domains import FlatView, flat_coordinates
from ..checks import check_int
from ._runs import as_run, check_layer, final_state, run_label, run_manifold
from ._style import check_name, check_out_dir, new_figure, save_figure, style

__all__ = ["NeuronConnectivity", "neuron_connectivity", "median_neuron", "figure_1c"]


@dataclass(frozen=True)
class NeuronConnectivity:
    """Incoming recurrent weights of one neuron with every neuron's flat position."""

    neuron: int  # j, the drawn neuron
    weights: np.ndarray  # (N,) row j of W_hh: weight of connection k -> j for each k
    view: FlatView  # positions of the N neurons in the plane
    sparsity: float  # fraction of exactly-zero entries of the whole W_hh, in [0, 1]
    label: str  # description of the run (regulariser + pruning method)
    positions_from: str  # name of the run directory whose embedding gave the positions

    @property
    def positions(self) -> np.ndarray:
        """(N, 2) plane coordinates of the neurons."""
        return self.view.xy

    @property
    def surviving(self) -> int:
        """Number of non-zero incoming connections of the neuron."""
        return int(np.count_nonzero(self.weights))


def median_neuron(weight_hh: torch.Tensor) -> int:
    """Index j of the neuron whose number of non-zero incoming weights (row j) is the median.

    ``weight_hh``: (N, N). With an even N the lower median is used; ties go to the lowest index.
    """
    if not isinstance(weight_hh, torch.Tensor) or weight_hh.dim() != 2 or weight_hh.shape[0] != weight_hh.shape[1]:
        raise ValueError(f"weight_hh must be a square (N, N) tensor, got {getattr(weight_hh, 'shape', type(weight_hh))}")
    counts = (weight_hh != 0).sum(dim=1).cpu()
    median = counts.sort().values[(counts.numel() - 1) // 2]
    return int(torch.nonzero(counts == median)[0, 0])


def _embedding(run: RunDir, layer: int) -> tuple[Any, torch.Tensor] | None:
    manifold = run_manifold(run)
    if manifold is None:
        return None
    return manifold, final_state(run)[f"rnn.regularizers.{layer}.embedding"]


def neuron_connectivity(
    run: RunDir | str | Path, neuron: int | None = None, layer: int = 0, positions_run: RunDir | str | Path | None = None
) -> NeuronConnectivity:
    """Row ``neuron`` of the run's final ``rnn.weight_hh_l{layer}`` (N,) with the neurons' positions.

    ``neuron`` defaults to :func:`median_neuron`. Positions come from the run's own neuron
    embedding; a run without one (``regularizer.kind: none``) needs ``positions_run``, a run with
    an embedding of the same N whose positions are used instead.
    """
    run = as_run(run)
    layer = check_layer(run, layer)
    if positions_run is not None:
        positions_run = as_run(positions_run, "positions_run")
        check_layer(positions_run, layer)
    state = final_state(run)
    weight = state[f"rnn.weight_hh_l{layer}"].detach().cpu()
    n = weight.shape[0]
    neuron = median_neuron(weight) if neuron is None else check_int(neuron, f"neuron (the run has {n} hidden neurons)", 0, n)
    embedded = _embedding(run, layer)
    source = run
    if embedded is None:
        if positions_run is None:
            raise ValueError(
                f"run {run.path.name} has no neuron positions (regularizer.kind: none); pass positions_run, "
                "a run with a neuron embedding of the same hidden size"
            )
        embedded = _embedding(positions_run, layer)
        source = positions_run
        if embedded is None:
            raise ValueError(f"positions_run {positions_run.path.name} has no neuron positions either (regularizer.kind: none)")
    manifold, points = embedded
    if points.shape[0] != n:
        raise ValueError(
            f"the positions of {source.path.name} are for {points.shape[0]} neurons but {run.path.name} has {n}; "
            "pass runs of the same hidden size"
        )
    return NeuronConnectivity(
        neuron=neuron,
        weights=weight[neuron].to(torch.float64).numpy(),
        view=flat_coordinates(manifold, points),
        sparsity=float((weight == 0).to(torch.float64).mean()),
        label=run_label(run),
        positions_from=source.path.name,
    )


def _draw(ax, conn: NeuronConnectivity, norm: Normalize, cmap: str):
    view = conn.view
    magnitude = np.abs(conn.weights)
    kept = magnitude > 0
    n = magnitude.shape[0]
    size = float(np.clip(700.0 / n, 2.0, 22.0))  # marker area (pt^2): readable from 32 to 4096 neurons
    ax.scatter(*view.xy[~kept].T, s=size, facecolors="none", edgecolors="0.7", linewidths=0.8, label="pruned (w = 0)")
    order = np.argsort(magnitude[kept], kind="stable")  # strongest drawn last, on top
    mappable = ax.scatter(*view.xy[kept][order].T, c=magnitude[kept][order], cmap=cmap, norm=norm, s=1.6 * size + 4,
                          edgecolors="black", linewidths=0.4, label="kept, colour = |w|")
    ax.scatter(*view.xy[conn.neuron], marker="*", s=260, c="red", edgecolors="black", linewidths=0.8,
               label=f"neuron j = {conn.neuron}", zorder=5)
    if view.periodic_box:
        ax.plot([view.xlim[0], view.xlim[1], view.xlim[1], view.xlim[0], view.xlim[0]],
                [view.ylim[0], view.ylim[0], view.ylim[1], view.ylim[1], view.ylim[0]], color="0.3", lw=1.0)
    # Data limits (not fixed limits) so that the equal aspect can widen them without warnings.
    ax.update_datalim([(view.xlim[0], view.ylim[0]), (view.xlim[1], view.ylim[1])])
    ax.margins(0.03)
    ax.autoscale_view()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(view.xlabel)
    ax.set_ylabel(view.ylabel)
    ax.set_title(
        f"{conn.label}\nW_hh sparsity {100 * conn.sparsity:.1f}%\n"
        f"neuron {conn.neuron}: {conn.surviving} of {n} inputs kept",
        fontsize="medium",
    )
    return mappable


def figure_1c(
    moduli_run: RunDir | str | Path,
    random_run: RunDir | str | Path,
    out_dir: str | Path,
    neuron: int | None = None,
    layer: int = 0,
    name: str = "figure_1c",
) -> list[Path]:
    """Incoming connections of one neuron after moduli vs random sparsification, side by side.

    Each panel draws the N neurons of one run on the flat domain of its manifold, coloured by
    |W_hh[j, k]| (connection k -> j) on a colour scale shared by both panels. ``neuron`` = j for
    both runs; by default each run shows its own :func:`median_neuron`. A random run without
    neuron positions is drawn at the moduli run's positions. Returns ``<out_dir>/<name>.png``, ``.pdf``.
    """
    out = check_out_dir(out_dir)
    name = check_name(name)
    moduli_run = as_run(moduli_run, "moduli_run")
    random_run = as_run(random_run, "random_run")
    panels = [
        neuron_connectivity(moduli_run, neuron, layer),
        neuron_connectivity(random_run, neuron, layer, positions_run=moduli_run),
    ]
    vmax = max(float(np.abs(c.weights).max()) for c in panels)
    norm = Normalize(vmin=0.0, vmax=vmax if vmax > 0 else 1.0)
    cmap = "viridis"
    with style():
        fig, axes = new_figure(1, 2, panel_size=(4.6, 4.8))
        mappable = None
        for ax, conn in zip(axes[0], panels):
            mappable = _draw(ax, conn, norm, cmap)
        fig.colorbar(mappable, ax=list(axes[0]), shrink=0.8, label="|W_hh[j, k]| (connection k -> j)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        labels[-1] = "neuron j"
        fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
        domains = "; ".join(dict.fromkeys(c.view.domain for c in panels))
        fig.suptitle(f"Incoming recurrent connections of one neuron ({domains})")
        return save_figure(fig, out, name)
