"""Identity inhibitor f(d) = d."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Inhibitor

__all__ = ["Identity"]


class Identity(Inhibitor):
    """``f(d) = d`` (returns a new tensor equal to ``d``, so callers may modify it in place)."""

    name = "identity"

    def _apply(self, d: Tensor) -> Tensor:
        return d.clone()

    def value_and_derivative(self, d: Tensor) -> tuple[Tensor, Tensor]:
        """``f(d) = d`` and ``f'(d) = 1``."""
        return d.clone(), torch.ones_like(d)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name}
