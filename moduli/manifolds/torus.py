"""The flat torus R^dim / (period Z)^dim."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._periodic import signed_residual, torus_difference, torus_wrap
from ._safe import safe_norm, sum_of_squares
from ..checks import check_int, check_real
from .base import Manifold
from .geoopt_flat import FlatTorusGeoopt

__all__ = ["Torus"]


class Torus(Manifold):
    """Flat ``dim``-torus with side ``period``; points are coordinates in ``[0, period)^dim``.

    Distance: ``sqrt(sum_k min(|dx_k|, period - |dx_k|)^2)`` (any representatives accepted).
    """

    name = "torus"
    exact_symmetry = True  # the residual of y - x is minus that of x - y, ties included

    def __init__(self, dim: int = 2, period: float = 10.0) -> None:
        self.dim: int = check_int(dim, "Torus dim")  # intrinsic dimension
        self.coord_dim: int = self.dim  # one coordinate per circle factor
        self.period: float = check_real(period, "Torus period", positive=True)  # side of the domain

    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` points uniform in ``[0, period)^dim``; shape ``(n, dim)``."""
        device = self._check_random_args(n, dtype, generator, device)
        u = torch.rand(n, self.coord_dim, generator=generator, device=device, dtype=dtype)
        return torus_wrap(u * self.period, self.period)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_norm(torus_difference(x, y, self.period))

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Closed form of :meth:`Manifold.squared_distance_and_gradients`: with ``r`` the shortest
        displacement from ``x`` to an image of ``y``, ``s = |r|^2`` and ``ds/dy = 2 r = -ds/dx``."""
        r = [signed_residual(y[k] - x[k], self.period) for k in range(self.coord_dim)]
        s = sum_of_squares(r)
        if not gradients:
            return s, None, None
        return s, tuple(-2.0 * rk for rk in r), tuple(2.0 * rk for rk in r)

    def project(self, x: Tensor) -> Tensor:
        """Wrap every coordinate into ``[0, period)``; shape kept."""
        self._check_tensor(x, "x")
        return torus_wrap(x, self.period)

    def _make_geoopt(self) -> geoopt.Manifold:
        return FlatTorusGeoopt(self.coord_dim, self.period)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "period": self.period}
