"""The flat Klein bottle on the square [0, period)^2."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._periodic import klein_difference, klein_wrap, torus_wrap
from ._safe import safe_norm
from .base import Manifold, check_positive_float
from .geoopt_flat import FlatKleinBottleGeoopt

__all__ = ["KleinBottle"]


class KleinBottle(Manifold):
    """Flat Klein bottle: ``[0, p)^2`` with ``(x, y) ~ (x + p, p - y) ~ (x, y + p)``.

    Distance: minimum flat distance over all images ``(x + a p, (-1)^a y + b p)`` of the
    second point (closed form over the two parity classes; any representatives accepted).
    """

    name = "klein"

    def __init__(self, period: float = 10.0) -> None:
        self.dim: int = 2  # intrinsic dimension
        self.coord_dim: int = 2  # (x, y) in the fundamental domain
        self.period: float = check_positive_float(period, "KleinBottle period")  # side of the domain

    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` points uniform in ``[0, period)^2`` (uniform on the Klein bottle); ``(n, 2)``."""
        device = self._check_random_args(n, dtype, generator, device)
        u = torch.rand(n, 2, generator=generator, device=device, dtype=dtype)
        return torus_wrap(u * self.period, self.period)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_norm(klein_difference(x, y, self.period)[0])

    def project(self, x: Tensor) -> Tensor:
        """Representative in ``[0, period)^2``; y is mirrored when x wraps an odd number of times."""
        self._check_tensor(x, "x")
        return klein_wrap(x, self.period)[0]

    def _make_geoopt(self) -> geoopt.Manifold:
        return FlatKleinBottleGeoopt(self.period)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "period": self.period}
