"""Abstract inhibitor: an elementwise function f of the distance between two neurons."""

from __future__ import annotations

import abc
import math
from typing import Any

from torch import Tensor

__all__ = ["Inhibitor", "check_real", "check_positive"]


def check_real(value: Any, what: str) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise one clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a real number, got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return float(value)


def check_positive(value: Any, what: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise one clear error."""
    value = check_real(value, what)
    if value <= 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    return value


class Inhibitor(abc.ABC):
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

    def __call__(self, d: Tensor) -> Tensor:
        """Coefficients ``f(d)``: any-shaped floating tensor -> same shape/dtype/device."""
        if not isinstance(d, Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor of distances, got {type(d).__name__}")
        if not d.is_floating_point():
            raise TypeError(f"distances must have a floating dtype, got {d.dtype}; convert with .float()")
        return self._apply(d)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inhibitor):
            return NotImplemented
        return type(self) is type(other) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.to_config())))
