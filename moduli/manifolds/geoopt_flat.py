"""geoopt manifolds for the flat torus and the flat Klein bottle.

Both carry the flat (Euclidean) metric of their fundamental domain: the inner product and the
Riemannian gradient are Euclidean, the exponential map is "add, then wrap into the domain".
On the torus vector transport is the identity. On the Klein bottle a tangent vector that is
carried across the x seam an odd number of times has its y component mirrored, so momentum
(RiemannianSGD) and first moments (RiemannianAdam) keep pointing the right way.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import geoopt
import torch
from geoopt.utils import broadcast_shapes
from torch import Tensor

from ._periodic import klein_difference, klein_wrap, torus_difference, torus_wrap
from ._safe import safe_norm

__all__ = ["FlatTorusGeoopt", "FlatKleinBottleGeoopt"]


class _FlatQuotient(geoopt.Manifold):
    """Shared flat-metric part of the torus and Klein bottle geoopt manifolds."""

    ndim = 1  # one trailing dimension holds a point's coordinates

    def __init__(self, coord_dim: int, period: float) -> None:
        super().__init__()
        self.coord_dim: int = coord_dim  # coordinates per point
        self.period: float = period  # side length of the fundamental domain

    def _check_shape(self, shape: Tuple[int], name: str) -> Tuple[bool, Optional[str]]:
        ok, reason = super()._check_shape(shape, name)
        if ok and shape[-1] != self.coord_dim:
            return False, f"'{name}' must have last dimension {self.coord_dim}, got {shape[-1]}"
        return ok, reason

    def _check_point_on_manifold(
        self, x: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> Union[Tuple[bool, Optional[str]], bool]:
        inside = bool(((x >= 0) & (x < self.period)).all())
        if not inside:
            return False, f"coordinates must lie in the fundamental domain [0, {self.period})"
        return True, None

    def _check_vector_on_tangent(
        self, x: Tensor, u: Tensor, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> Union[Tuple[bool, Optional[str]], bool]:
        return True, None

    def inner(self, x: Tensor, u: Tensor, v: Optional[Tensor] = None, *, keepdim: bool = False) -> Tensor:
        prod = u * u if v is None else u * v
        inner = prod.sum(-1, keepdim=keepdim)
        target = broadcast_shapes(x.shape[:-1] + ((1,) if keepdim else ()), inner.shape)
        return inner.expand(target)

    def component_inner(self, x: Tensor, u: Tensor, v: Optional[Tensor] = None) -> Tensor:
        prod = u * u if v is None else u * v
        return prod.expand(broadcast_shapes(x.shape, prod.shape))

    def norm(self, x: Tensor, u: Tensor, *, keepdim: bool = False) -> Tensor:
        return u.norm(dim=-1, keepdim=keepdim)

    def proju(self, x: Tensor, u: Tensor) -> Tensor:
        return u.expand(broadcast_shapes(x.shape, u.shape))

    def egrad2rgrad(self, x: Tensor, u: Tensor) -> Tensor:
        return u.expand(broadcast_shapes(x.shape, u.shape))

    def expmap(self, x: Tensor, u: Tensor) -> Tensor:
        return self.retr(x, u)

    def dist(self, x: Tensor, y: Tensor, *, keepdim: bool = False) -> Tensor:
        d = safe_norm(self.logmap(x, y))
        return d.unsqueeze(-1) if keepdim else d

    def extra_repr(self) -> str:
        return f"coord_dim={self.coord_dim}, period={self.period}"


class FlatTorusGeoopt(_FlatQuotient):
    """geoopt view of the flat torus ``R^dim / (period Z)^dim``; points in ``[0, period)^dim``."""

    name = "FlatTorus"
    reversible = True

    def projx(self, x: Tensor) -> Tensor:
        return torus_wrap(x, self.period)

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        return torus_wrap(x + u, self.period)

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return torus_difference(x, y, self.period)

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        return v.expand(broadcast_shapes(x.shape, y.shape, v.shape))


class FlatKleinBottleGeoopt(_FlatQuotient):
    """geoopt view of the flat Klein bottle; points in ``[0, period)^2``."""

    name = "FlatKleinBottle"
    reversible = False  # a step across the seam mirrors the frame

    def __init__(self, period: float) -> None:
        super().__init__(2, period)

    @staticmethod
    def _mirror(v: Tensor, odd: Tensor) -> Tensor:
        """Flip the y component of tangent vectors ``v`` (..., 2) where ``odd`` (...) holds."""
        sign = torch.where(odd, -torch.ones_like(v[..., 1]), torch.ones_like(v[..., 1]))
        return torch.stack((v[..., 0], v[..., 1] * sign), dim=-1)

    def projx(self, x: Tensor) -> Tensor:
        return klein_wrap(x, self.period)[0]

    def retr(self, x: Tensor, u: Tensor) -> Tensor:
        return klein_wrap(x + u, self.period)[0]

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        y, odd = klein_wrap(x + u, self.period)
        v = v.expand(broadcast_shapes(x.shape, u.shape, v.shape))
        return y, self._mirror(v, odd)

    def expmap_transp(self, x: Tensor, u: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        return self.retr_transp(x, u, v)

    def transp_follow_retr(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        return self.retr_transp(x, u, v)[1]

    def transp_follow_expmap(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        return self.retr_transp(x, u, v)[1]

    def logmap(self, x: Tensor, y: Tensor) -> Tensor:
        return klein_difference(x, y, self.period)[0]

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Transport along the shortest path from ``x`` to ``y`` (mirrored if it crosses the seam oddly)."""
        _, odd = klein_difference(x, y, self.period)
        v = v.expand(broadcast_shapes(x.shape, y.shape, v.shape))
        return self._mirror(v, odd)
