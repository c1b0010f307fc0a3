"""Abstract base class of the metric spaces ("moduli spaces") that hidden neurons live on."""

from __future__ import annotations

import abc
from typing import Any

import geoopt
import torch
from torch import Tensor

from ..described import Described

__all__ = ["Manifold"]


class Manifold(Described, abc.ABC):
    """A metric space with coordinates, random sampling and a geoopt counterpart for learning.

    Points are stored as tensors of shape ``(..., coord_dim)``; distances are geodesic
    distances in the space's own units (period / radius units).
    """

    name: str = ""  # config/registry name of the concept, e.g. "torus"
    dim: int  # intrinsic dimension of the space
    coord_dim: int  # number of coordinates describing one point
    # True when squared_distance_and_gradients(y, x) returns that of (x, y) bit for bit with the two
    # gradients swapped (differences negate exactly); the fused penalty then evaluates each pair once
    # instead of once per orientation.
    exact_symmetry: bool = False

    # ---- abstract interface -------------------------------------------------------------

    @abc.abstractmethod
    def random(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw ``n`` random points; returns shape ``(n, coord_dim)``.

        ``device`` defaults to the generator's device (CPU without a generator).
        """

    @abc.abstractmethod
    def _distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Geodesic distance of already validated, broadcastable ``(..., coord_dim)`` inputs."""

    @abc.abstractmethod
    def project(self, x: Tensor) -> Tensor:
        """Canonical representative of each point of ``x`` (``(..., coord_dim)`` -> same shape)."""

    @abc.abstractmethod
    def _make_geoopt(self) -> geoopt.Manifold:
        """Build the geoopt manifold used to optimise points of this space."""

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """Plain-dict description; ``manifold_from_config(m.to_config()) == m``."""

    # ---- validation ---------------------------------------------------------------------

    def _check_tensor(self, x: Any, what: str) -> None:
        """Type, dtype and trailing-shape checks (cheap: no device synchronisation)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{what} must be a torch.Tensor of shape (..., {self.coord_dim}), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{what} must have a floating dtype, got {x.dtype}; convert with .float()")
        if x.dim() < 1 or x.shape[-1] != self.coord_dim:
            raise ValueError(
                f"{what} must have shape (..., {self.coord_dim}) for {self!r}, got {tuple(x.shape)}"
            )

    def _check_values(self, x: Tensor, what: str) -> None:
        """Space-specific value checks on finite points (overridden by spheres)."""

    def check_points(self, x: Tensor, what: str = "points") -> None:
        """Raise a ValueError/TypeError if ``x`` is not a valid ``(..., coord_dim)`` batch of points.

        Checks type, floating dtype, shape, finiteness and space-specific constraints (unit
        norm on spheres). Reads the values, so it synchronises with the device.
        """
        self._check_tensor(x, what)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} contain NaN or infinite values; every coordinate must be finite")
        self._check_values(x, what)

    # ---- distances ----------------------------------------------------------------------

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Geodesic distance, broadcasting: ``(..., coord_dim)`` x ``(..., coord_dim)`` -> ``(...)``.

        Only types and shapes are checked here (no device sync); use :meth:`check_points`
        once on an embedding to validate its values.
        """
        self._check_tensor(x, "x")
        self._check_tensor(y, "y")
        if x.dtype != y.dtype or x.device != y.device:
            raise ValueError(
                f"x and y must share dtype and device, got {x.dtype}/{x.device} and {y.dtype}/{y.device}"
            )
        try:
            torch.broadcast_shapes(x.shape[:-1], y.shape[:-1])
        except RuntimeError as err:
            raise ValueError(
                f"leading shapes of x {tuple(x.shape)} and y {tuple(y.shape)} do not broadcast"
            ) from err
        return self._distance(x, y)

    def pairwise_distance(self, points: Tensor) -> Tensor:
        """All pairwise distances of ``points`` (``(N, coord_dim)``) -> ``(N, N)``, differentiable."""
        self._check_tensor(points, "points")
        if points.dim() != 2:
            raise ValueError(f"points must have shape (N, {self.coord_dim}), got {tuple(points.shape)}")
        return self._distance(points.unsqueeze(1), points.unsqueeze(0))

    def squared_distance_and_gradients(
        self, x: Tensor, y: Tensor, gradients: bool = True
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """Squared distance ``s = d(x, y)^2`` and its partial derivatives, coordinates on the leading axis.

        ``x``, ``y``: ``(coord_dim, ...)`` with broadcastable trailing shapes, e.g. ``(coord_dim, B, 1)``
        rows against ``(coord_dim, 1, N)`` points. Returns ``(s, s_x, s_y)``: ``s`` of the broadcast
        shape ``S`` (squared distance units), and ``s_x``, ``s_y`` tuples of ``coord_dim`` tensors of
        shape ``S`` holding ds/dx_k and ds/dy_k (``None`` when ``gradients`` is False): ``2 d`` times
        what autograd gives through :meth:`distance` (0 at d = 0, the same image at the seams), up to
        rounding. The square needs no root on the flat spaces and is what Gaussian-type inhibitors
        read. This default differentiates ``_distance`` with autograd; the spaces of this package
        override it with closed forms on (B, N) planes, which the fused penalty uses.
        """
        xs, ys = x.movedim(0, -1), y.movedim(0, -1)
        if not gradients:
            d = self._distance(xs, ys)
            return d * d, None, None
        shape = torch.broadcast_shapes(xs.shape, ys.shape)
        with torch.enable_grad():
            xe = xs.detach().expand(shape).clone().requires_grad_(True)
            ye = ys.detach().expand(shape).clone().requires_grad_(True)
            d = self._distance(xe, ye)
            # d[..] depends on xe[..] and ye[..] alone, so the gradient of the sum is per pair
            gx, gy = torch.autograd.grad(d.sum(), (xe, ye))
        d = d.detach()
        twice = 2.0 * d
        return d * d, tuple(twice * g for g in gx.movedim(-1, 0)), tuple(twice * g for g in gy.movedim(-1, 0))

    # ---- learning -----------------------------------------------------------------------

    @property
    def geoopt_manifold(self) -> geoopt.Manifold:
        """geoopt manifold for ``geoopt.ManifoldParameter`` and Riemannian optimisers (cached)."""
        cached = self.__dict__.get("_geoopt_cache")
        if cached is None:
            cached = self._make_geoopt()
            self.__dict__["_geoopt_cache"] = cached
        return cached

    def parameter(self, points: Tensor, requires_grad: bool = True) -> geoopt.ManifoldParameter:
        """Validated, projected copy of ``points`` (``(N, coord_dim)``) as a ManifoldParameter."""
        self.check_points(points)
        data = self.project(points.detach()).clone()
        return geoopt.ManifoldParameter(data, manifold=self.geoopt_manifold, requires_grad=requires_grad)

    # ---- sampling helper ----------------------------------------------------------------

    @staticmethod
    def _check_random_args(
        n: Any, dtype: Any, generator: torch.Generator | None, device: torch.device | str | None
    ) -> torch.device | str | None:
        """Validate ``random``'s arguments; returns the device to sample on (the generator's if unset)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if device is None and generator is not None:
            return generator.device
        return device
