"""The flat Klein bottle on the square [0, period)^2."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._periodic import klein_difference, klein_wrap, signed_residual, torus_wrap
from ._safe import safe_norm
from ..checks import check_real
from .base import Manifold
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
        self.period: float = check_real(period, "KleinBottle period", positive=True)  # side of the domain

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

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Closed form of :meth:`Manifold.squared_distance_and_gradients`, choosing the image as
        :func:`~moduli.manifolds._periodic.klein_difference` does (ties go to the even image).

        With ``r`` the displacement to the nearest image: ``ds/dx = -2 r``; ``ds/dy = 2 r`` for an
        even image and ``2 (r_x, -r_y)`` for an odd one (its y offset is ``-y - x``).
        """
        p = self.period
        dx = y[0] - x[0]
        even_x, even_y = signed_residual(dx, 2.0 * p), signed_residual(y[1] - x[1], p)
        odd_x, odd_y = signed_residual(dx + p, 2.0 * p), signed_residual(-y[1] - x[1], p)
        odd = (odd_x * odd_x + odd_y * odd_y) < (even_x * even_x + even_y * even_y)
        r_x, r_y = torch.where(odd, odd_x, even_x), torch.where(odd, odd_y, even_y)
        s = r_x * r_x + r_y * r_y
        if not gradients:
            return s, None, None
        return s, (-2.0 * r_x, -2.0 * r_y), (2.0 * r_x, torch.where(odd, -2.0 * r_y, 2.0 * r_y))

    def project(self, x: Tensor) -> Tensor:
        """Representative in ``[0, period)^2``; y is mirrored when x wraps an odd number of times."""
        self._check_tensor(x, "x")
        return klein_wrap(x, self.period)[0]

    def _make_geoopt(self) -> geoopt.Manifold:
        return FlatKleinBottleGeoopt(self.period)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "period": self.period}
