"""The round sphere S^dim of a given radius, as unit vectors in R^(dim+1)."""

from __future__ import annotations

from typing import Any

import geoopt
import torch
from torch import Tensor

from ._safe import planes_norm, safe_norm
from ..checks import check_int, check_real
from .base import Manifold

__all__ = ["Sphere"]


class Sphere(Manifold):
    """Sphere ``S^dim`` of radius ``radius``; points are unit vectors of shape ``(..., dim + 1)``.

    Distance: ``radius * angle`` with ``angle = 2 atan2(|x - y|, |x + y|)``, accurate to
    float rounding at every angle (a clamped ``arccos`` loses about 1e-2 rad near 0 and pi in
    float32) and differentiable everywhere, including ``x == y``.
    """

    name = "sphere"
    exact_symmetry = True  # |x - y|, |x + y| and their derivatives are symmetric bit for bit

    def __init__(self, dim: int = 2, radius: float = 5.0) -> None:
        self.dim: int = check_int(dim, f"{type(self).__name__} dim")  # intrinsic dimension
        self.coord_dim: int = self.dim + 1  # ambient coordinates of a unit vector
        self.radius: float = check_real(radius, f"{type(self).__name__} radius", positive=True)  # distance units per radian

    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` points uniform on the sphere (normalised Gaussians); shape ``(n, dim + 1)``."""
        device = self._check_random_args(n, dtype, generator, device)
        g = torch.randn(n, self.coord_dim, generator=generator, device=device, dtype=dtype)
        return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)

    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        angle = 2.0 * torch.atan2(safe_norm(x - y), safe_norm(x + y))
        return self.radius * angle

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Closed form of :meth:`Manifold.squared_distance_and_gradients`.

        With ``a = |x - y|``, ``b = |x + y|`` and ``d = 2 radius atan2(a, b)``:
        ``dd/dx = k (b (x - y) / a - a (x + y) / b)``, ``dd/dy = k (-b (x - y) / a - a (x + y) / b)``,
        ``k = 2 radius / (a^2 + b^2)``, and ``ds = 2 d dd``; a term whose norm is 0 contributes 0 (as
        ``safe_norm``), so the gradient is 0 at ``x = y`` and at antipodes, as autograd gives.
        """
        diff = [x[k] - y[k] for k in range(self.coord_dim)]
        total = [x[k] + y[k] for k in range(self.coord_dim)]
        a, a_reciprocal = planes_norm(diff)
        b, b_reciprocal = planes_norm(total)
        d = (2.0 * self.radius) * torch.atan2(a, b)
        if not gradients:
            return d * d, None, None
        k = (4.0 * self.radius) * d / (a * a + b * b)  # 2 d times the k above
        along_diff = k * b * a_reciprocal  # coefficient of (x - y)
        along_total = k * a * b_reciprocal  # coefficient of (x + y)
        s_x = tuple(along_diff * u - along_total * v for u, v in zip(diff, total))
        s_y = tuple(-along_diff * u - along_total * v for u, v in zip(diff, total))
        return d * d, s_x, s_y

    def project(self, x: Tensor) -> Tensor:
        """Normalise every (non-zero) row to unit length; shape kept."""
        self._check_tensor(x, "x")
        return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)

    def _check_values(self, x: Tensor, what: str) -> None:
        tol = float(torch.finfo(x.dtype).eps) ** 0.5
        deviation = (torch.linalg.vector_norm(x, dim=-1) - 1.0).abs()
        if x.numel() > 0 and float(deviation.max()) > tol:
            raise ValueError(
                f"{what} must be unit vectors on {self!r} (|norm - 1| <= {tol:.1e}), got a deviation "
                f"of {float(deviation.max()):.3e}; normalise them with .project()"
            )

    def _make_geoopt(self) -> geoopt.Manifold:
        return geoopt.Sphere()

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "radius": self.radius}
