"""The circle S^1 of a given radius, as unit vectors in R^2."""

from __future__ import annotations

from typing import Any

from .sphere import Sphere

__all__ = ["Circle"]


class Circle(Sphere):
    """Circle of radius ``radius``; points are unit vectors ``(..., 2)``; distance = radius * angle."""

    name = "circle"

    def __init__(self, radius: float = 5.0) -> None:
        super().__init__(dim=1, radius=radius)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "radius": self.radius}
