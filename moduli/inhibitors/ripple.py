"""Ripple (sinusoidal) inhibitor f(d) = base + amplitude cos(frequency d)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_real
from .base import Inhibitor

__all__ = ["Ripple"]


class Ripple(Inhibitor):
    """``f(d) = base + amplitude * cos(frequency * d)``; default ``50 + 50 cos(2 d)``."""

    name = "ripple"

    def __init__(self, base: float = 50.0, amplitude: float = 50.0, frequency: float = 2.0) -> None:
        self.base: float = check_real(base, "Ripple base")  # mean coefficient
        self.amplitude: float = check_real(amplitude, "Ripple amplitude")  # oscillation height
        self.frequency: float = check_real(frequency, "Ripple frequency")  # radians per distance unit

    def _apply(self, d: Tensor) -> Tensor:
        return self.base + self.amplitude * torch.cos(self.frequency * d)

    def value_and_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """``f(d)`` and ``f'(d) = -amplitude frequency sin(frequency d)``."""
        phase = self.frequency * d
        return self.base + self.amplitude * torch.cos(phase), (-self.amplitude * self.frequency) * torch.sin(phase)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "amplitude": self.amplitude, "frequency": self.frequency}
