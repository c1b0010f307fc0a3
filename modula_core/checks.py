"""The argument checks of the engine: one clear error naming the argument, before any work."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_int", "check_real", "check_target"]


def check_int(value: object, what: str, low: int = 1) -> int:
    """``value`` if it is an int >= ``low`` (TypeError for a non-int, bool included; ValueError below)."""
    kind = "a positive int" if low == 1 else f"an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be {kind}, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{what} must be {kind}, got {value}")
    return int(value)


def check_real(value: object, what: str) -> float:
    """``value`` as a float if it is a finite real number >= 0 (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{what} must be a finite real number >= 0, got {value!r}")
    return float(value)


def check_target(target_norm: object) -> float:
    """A target norm: a real number >= 0."""
    if not isinstance(target_norm, numbers.Real) or not target_norm >= 0:
        raise ValueError(f"target_norm must be a real number >= 0, got {target_norm!r}")
    return float(target_norm)
