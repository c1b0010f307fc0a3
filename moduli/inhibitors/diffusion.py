"""Diffusion inhibitor f(d) = d^2."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Inhibitor

__all__ = ["Diffusion"]


class Diffusion(Inhibitor):
    """``f(d) = d^2`` (squared distance units)."""

    name = "diffusion"

    def _apply(self, d: Tensor) -> Tensor:
        return d * d

    def at_squared_distance(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``f = s`` and ``df/ds = 1`` at ``s = d^2``."""
        return s.clone(), torch.ones_like(s)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name}
