"""Gaussian inhibitor f(d) = amplitude exp(-d^2 / variance)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_real
from .base import Inhibitor

__all__ = ["Gaussian"]


class Gaussian(Inhibitor):
    """``f(d) = amplitude * exp(-d^2 / variance)``; default ``100 exp(-d^2 / 3)``."""

    name = "gaussian"

    def __init__(self, amplitude: float = 100.0, variance: float = 3.0) -> None:
        self.amplitude: float = check_real(amplitude, "Gaussian amplitude")  # value at d = 0
        self.variance: float = check_real(variance, "Gaussian variance", positive=True)  # scale of d^2

    def _apply(self, d: Tensor) -> Tensor:
        return self.amplitude * torch.exp(-(d * d) / self.variance)

    def at_squared_distance(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``f`` and ``df/ds = -f / variance`` at ``s = d^2``."""
        f = self.amplitude * torch.exp(-s / self.variance)
        return f, f * (-1.0 / self.variance)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "amplitude": self.amplitude, "variance": self.variance}
