"""Abstract inhibitor: an elementwise function f of the distance between two neurons."""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from ..described import Described

from ..manifolds import sqrt_and_reciprocal

__all__ = ["Inhibitor", "exp_floored"]

EXP_FLOOR = -80.0  # exp(-80) ~ 1.8e-35: still a normal float32, far below any coefficient's rounding


def exp_floored(u: Tensor) -> Tensor:
    """``exp(max(u, -80))``: ``exp(u)`` to within 1.8e-35 absolute.

    The floor keeps the CPU exp kernel off its slow path for arguments whose result underflows
    (below about -87 in float32, an order of magnitude slower), which Gaussians of long distances
    hit for most pairs. The derivative is 0 below the floor.
    """
    return torch.exp(u.clamp_min(EXP_FLOOR))






class Inhibitor(Described, abc.ABC):
    """Maps a distance tensor elementwise to penalty coefficients.

    ``f(d)`` has the shape, dtype and device of ``d`` and is differentiable in ``d``.
    Distances are in the units of the manifold (period / radius units).
    """

    name: str = ""  # registry/config name, e.g. "dog"

    @abc.abstractmethod
    def _apply(self, d: Tensor) -> Tensor:
        """Coefficients for a validated floating tensor ``d`` (any shape)."""

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """Plain-dict description; ``inhibitor_from_config(f.to_config()) == f``."""

    def value_and_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(d), f'(d))`` for a floating tensor ``d``, both of its shape, dtype and device.

        ``f'`` is what autograd gives through ``f`` (one-sided where ``f`` has a kink, e.g. a
        clamp). This default differentiates ``f`` with autograd; the inhibitors of this package
        override it with closed forms, which the fused penalty uses.
        """
        with torch.enable_grad():
            t = d.detach().requires_grad_(True)
            f = self(t)
            if not f.requires_grad:  # f does not depend on d (a constant)
                return f.detach(), torch.zeros_like(d)
            (derivative,) = torch.autograd.grad(f.sum(), t, allow_unused=True, materialize_grads=True)
        return f.detach(), derivative

    def at_squared_distance(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``(f, df/ds)`` as functions of the squared distance ``s = d^2`` (floating, any shape).

        ``df/ds = f'(d) / (2 d)``; it multiplies ds/dx = 2 d dd/dx, which is 0 at d = 0, so the
        finite stand-in for 1/d there (see ``sqrt_and_reciprocal``) gives the zero gradient autograd
        gives. Inhibitors that are functions of d^2 override this without the root.
        """
        d, reciprocal = sqrt_and_reciprocal(s)
        f, derivative = self.value_and_derivative(d)
        return f, derivative * (0.5 * reciprocal)

    def __call__(self, d: Tensor) -> Tensor:
        """Coefficients ``f(d)``: any-shaped floating tensor -> same shape/dtype/device."""
        if not isinstance(d, Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor of distances, got {type(d).__name__}")
        if not d.is_floating_point():
            raise TypeError(f"distances must have a floating dtype, got {d.dtype}; convert with .float()")
        return self._apply(d)
