"""Euclidean space R^dim (used for freely learned embeddings)."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._safe import safe_norm, sum_of_squares
from ..checks import check_int
from .base import Manifold

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """``R^dim`` with the Euclidean distance; points are plain vectors ``(..., dim)``."""

    name = "euclidean"
    exact_symmetry = True  # y - x is exactly -(x - y)

    def __init__(self, dim: int) -> None:
        self.dim: int = check_int(dim, "Euclidean dim")  # intrinsic dimension
        self.coord_dim: int = self.dim  # coordinates are the point itself

    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` standard Gaussian points; shape ``(n, dim)``."""
        device = self._check_random_args(n, dtype, generator, device)
        return torch.randn(n, self.coord_dim, generator=generator, device=device, dtype=dtype)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_norm(x - y)

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Closed form of :meth:`Manifold.squared_distance_and_gradients`: ``ds/dx = 2 (x - y) = -ds/dy``."""
        diff = [x[k] - y[k] for k in range(self.coord_dim)]
        s = sum_of_squares(diff)
        if not gradients:
            return s, None, None
        return s, tuple(2.0 * v for v in diff), tuple(-2.0 * v for v in diff)

    def project(self, x: Tensor) -> Tensor:
        """Identity (every vector is a point); returns ``x`` itself."""
        self._check_tensor(x, "x")
        return x

    def _make_geoopt(self) -> geoopt.Manifold:
        return geoopt.Euclidean(ndim=1)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim}
