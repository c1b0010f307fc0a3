"""Flat 2-D pictures of neuron positions: the fundamental domain of a torus or Klein bottle,
the angle of a circle, longitude/latitude of a 2-sphere."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..manifolds import Circle, KleinBottle, Manifold, Sphere, Torus

__all__ = ["FlatView", "flat_coordinates", "FLAT_MANIFOLDS"]

FLAT_MANIFOLDS = "a 2-torus, a Klein bottle, a circle or a 2-sphere"  # what flat_coordinates draws


@dataclass(frozen=True)
class FlatView:
    """Neuron positions drawn in a plane."""

    xy: np.ndarray  # (N, 2) plane coordinates of the neurons
    xlim: tuple[float, float]  # x range of the drawn domain
    ylim: tuple[float, float]  # y range of the drawn domain
    xlabel: str  # axis label of the first coordinate
    ylabel: str  # axis label of the second coordinate
    domain: str  # one-line description of the domain, e.g. "torus fundamental domain [0, 10)^2"
    periodic_box: bool  # True for a fundamental domain whose edges are glued (drawn as a box)


def flat_coordinates(manifold: Manifold, points: torch.Tensor) -> FlatView:
    """Plane coordinates of ``points`` (N, coord_dim) on ``manifold``.

    Torus (dim 2) and Klein bottle: the representative in ``[0, period)^2``. Circle: the point
    ``(cos t, sin t)`` of its angle t (the circle itself). 2-sphere: (longitude in [0, 2 pi),
    latitude in [-pi/2, pi/2]) in radians. Other manifolds raise a ValueError.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 2:
        raise ValueError(f"points must be an (N, coord_dim) tensor, got {getattr(points, 'shape', type(points))}")
    pts = points.detach().to("cpu", torch.float64)
    if isinstance(manifold, (Torus, KleinBottle)) and manifold.dim == 2:
        p = manifold.period
        kind = "torus" if isinstance(manifold, Torus) else "Klein bottle"
        return FlatView(manifold.project(pts).numpy(), (0.0, p), (0.0, p), "x", "y",
                        f"{kind} fundamental domain [0, {p:g})^2", True)
    if isinstance(manifold, Circle):
        angle = torch.atan2(pts[:, 1], pts[:, 0])
        xy = torch.stack((torch.cos(angle), torch.sin(angle)), dim=1).numpy()
        return FlatView(xy, (-1.2, 1.2), (-1.2, 1.2), "cos(angle)", "sin(angle)",
                        f"circle of radius {manifold.radius:g}, drawn at each neuron's angle", False)
    if isinstance(manifold, Sphere) and manifold.dim == 2:
        unit = manifold.project(pts)
        longitude = torch.remainder(torch.atan2(unit[:, 1], unit[:, 0]), 2 * math.pi)
        latitude = torch.asin(unit[:, 2].clamp(-1.0, 1.0))
        return FlatView(torch.stack((longitude, latitude), dim=1).numpy(), (0.0, 2 * math.pi),
                        (-math.pi / 2, math.pi / 2), "longitude (rad)", "latitude (rad)",
                        f"2-sphere of radius {manifold.radius:g}, longitude/latitude", False)
    raise ValueError(
        f"cannot draw neurons of {manifold!r} on a flat 2-D domain; this figure supports {FLAT_MANIFOLDS} "
        "(e.g. regularizer.manifold=torus or klein)"
    )
