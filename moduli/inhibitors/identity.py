"""Identity inhibitor f(d) = d."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .base import Inhibitor

__all__ = ["Identity"]


class Identity(Inhibitor):
    """``f(d) = d`` (returns a new tensor equal to ``d``, so callers may modify it in place)."""

    name = "identity"

    def _apply(self, d: Tensor) -> Tensor:
        return d.clone()

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name}
