"""Objects described by their ``to_config()``: equal, hashed and printed by that description.

Manifolds and inhibitors are plain classes (they validate their arguments, derive values from
them, and a manifold caches its geoopt counterpart), so identity comes from here rather than from
a frozen dataclass.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Described"]


class Described:
    """Mixin: ``__eq__``, ``__hash__`` and ``__repr__`` from ``to_config()`` (a dict with ``name``)."""

    def to_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Described):
            return NotImplemented
        return type(self) is type(other) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.to_config())))
