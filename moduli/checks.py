"""The argument checks of the package: one clear error naming the argument, before any work."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_int", "check_real"]


def check_int(value: Any, what: str, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an int in ``[low, high)`` (no upper bound when ``high`` is None).

    TypeError for a non-int (bool included), ValueError out of range; the default ``low = 1``
    reads "a positive int".
    """
    kind = "a positive int" if low == 1 and high is None else "an int"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be {kind}, got {value!r} of type {type(value).__name__}")
    if value < low or (high is not None and value >= high):
        bound = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be {kind} ({bound}), got {value}")
    return int(value)


def check_real(value: Any, what: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``value`` as a float if it is a finite real number (``> 0`` with ``positive``, ``>= 0`` with
    ``nonnegative``). TypeError for a non-number (bool included), ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a real number, got {value!r} of type {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return float(value)
