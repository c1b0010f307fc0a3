"""Diffusion inhibitor f(d) = d^2."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .base import Inhibitor

__all__ = ["Diffusion"]


class Diffusion(Inhibitor):
    """``f(d) = d^2`` (squared distance units)."""

    name = "diffusion"

    def _apply(self, d: Tensor) -> Tensor:
        return d * d

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name}
