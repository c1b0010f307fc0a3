"""Constant inhibitor: plain (weighted) L1/L2 with no geometry."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_real
from .base import Inhibitor

__all__ = ["Constant"]


class Constant(Inhibitor):
    """``f(d) = value`` everywhere; ``value = 1`` is plain L1 (or L2) on the weights."""

    name = "constant"

    def __init__(self, value: float = 1.0) -> None:
        self.value: float = check_real(value, "Constant value")  # coefficient for every pair

    def _apply(self, d: Tensor) -> Tensor:
        return torch.full_like(d, self.value)

    def value_and_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """``f(d) = value`` and ``f'(d) = 0``."""
        return torch.full_like(d, self.value), torch.zeros_like(d)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}
