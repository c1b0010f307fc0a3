"""Cartesian products of manifolds with the product (l2) metric."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._safe import safe_sqrt
from .base import Manifold

__all__ = ["Product"]


class Product(Manifold):
    """Product ``M_1 x ... x M_k``; a point is the concatenation of the factors' coordinates.

    Distance: ``sqrt(sum_i d_i^2)`` with ``d_i`` the distance in factor ``i``.
    Example: ``Product(Sphere(2), Torus(2))`` has points of shape ``(..., 3 + 2)``.
    """

    name = "product"

    def __init__(self, *manifolds: Manifold) -> None:
        if len(manifolds) == 0:
            raise ValueError("Product needs at least one factor, e.g. Product(Sphere(2), Torus(2))")
        for i, m in enumerate(manifolds):
            if not isinstance(m, Manifold):
                raise TypeError(f"Product factor {i} must be a Manifold instance, got {type(m).__name__}")
        self.factors: tuple[Manifold, ...] = tuple(manifolds)  # factor spaces, in coordinate order
        self.dim: int = sum(m.dim for m in manifolds)  # intrinsic dimension
        self.coord_dim: int = sum(m.coord_dim for m in manifolds)  # total coordinates
        bounds = [0]
        for m in manifolds:
            bounds.append(bounds[-1] + m.coord_dim)
        # coordinate slice of each factor inside a point
        self.slices: tuple[slice, ...] = tuple(slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]))
        self.exact_symmetry: bool = all(m.exact_symmetry for m in manifolds)  # as every factor

    def split(self, x: Tensor) -> tuple[Tensor, ...]:
        """Views of the factors' coordinates: ``(..., coord_dim)`` -> tuple of ``(..., coord_dim_i)``."""
        return tuple(x[..., s] for s in self.slices)

    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Independent random points of each factor, concatenated; shape ``(n, coord_dim)``."""
        device = self._check_random_args(n, dtype, generator, device)
        parts = [m.random(n, generator=generator, device=device, dtype=dtype) for m in self.factors]
        return torch.cat(parts, dim=-1)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        squares = [m._distance(a, b) ** 2 for m, a, b in zip(self.factors, self.split(x), self.split(y))]
        return safe_sqrt(torch.stack(torch.broadcast_tensors(*squares), dim=0).sum(0))

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Closed form of :meth:`Manifold.squared_distance_and_gradients` from the factors' own:
        ``s = sum_i s_i`` and ``ds/dx`` is ``ds_i/dx`` on factor ``i``'s coordinates."""
        parts = [m.squared_distance_and_gradients(x[c], y[c], gradients) for m, c in zip(self.factors, self.slices)]
        s = parts[0][0]
        for s_i, _, _ in parts[1:]:
            s = s + s_i
        if not gradients:
            return s, None, None
        return s, tuple(g for _, gx, _ in parts for g in gx), tuple(g for _, _, gy in parts for g in gy)

    def project(self, x: Tensor) -> Tensor:
        """Project each factor's slice with that factor's ``project``; shape kept."""
        self._check_tensor(x, "x")
        return torch.cat([m.project(a) for m, a in zip(self.factors, self.split(x))], dim=-1)

    def _check_values(self, x: Tensor, what: str) -> None:
        for i, (m, a) in enumerate(zip(self.factors, self.split(x))):
            m._check_values(a, f"{what} (factor {i}: {m!r})")

    def _make_geoopt(self) -> geoopt.Manifold:
        return geoopt.ProductManifold(*((m.geoopt_manifold, m.coord_dim) for m in self.factors))

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "factors": [m.to_config() for m in self.factors]}

    def __repr__(self) -> str:
        return f"Product({', '.join(repr(m) for m in self.factors)})"
