"""Square roots and norms with finite gradients everywhere.

All helpers work in the dtype and on the device of their inputs and have finite gradients
everywhere, including at the points where the plain formulas are singular (sqrt at 0).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["safe_sqrt", "safe_norm", "sqrt_and_reciprocal", "sum_of_squares", "planes_norm"]


def safe_sqrt(s: Tensor) -> Tensor:
    """Elementwise sqrt of a non-negative tensor whose gradient at 0 is 0 (not inf/NaN).

    Uses the double-``where`` trick: the square root is only ever evaluated on positive
    entries, so the backward pass never forms 1 / sqrt(0).
    """
    positive = s > 0
    s_positive = torch.where(positive, s, torch.ones_like(s))
    return torch.where(positive, torch.sqrt(s_positive), torch.zeros_like(s))


def safe_norm(v: Tensor, dim: int = -1) -> Tensor:
    """Euclidean norm over ``dim`` with gradient 0 (instead of NaN) at the zero vector.

    Shape: ``(..., k, ...)`` -> the same shape without ``dim``.
    """
    return safe_sqrt((v * v).sum(dim=dim))


def sqrt_and_reciprocal(s: Tensor) -> tuple[Tensor, Tensor]:
    """``(sqrt(s), 1 / sqrt(s))`` of a non-negative tensor, elementwise and without ``where``.

    At ``s = 0`` the root is 0 and the reciprocal is finite (``1 / sqrt(tiny)``), so a zero
    vector times the reciprocal gives the zero gradient of :func:`safe_norm`. Rounding: about one
    unit in the last place of each.
    """
    reciprocal = torch.rsqrt(s.clamp_min(torch.finfo(s.dtype).tiny))
    return s * reciprocal, reciprocal


def sum_of_squares(planes: Sequence[Tensor]) -> Tensor:
    """``sum_k planes[k]^2``: squared norm of vectors given by their coordinate planes (in order)."""
    total = planes[0] * planes[0]
    for plane in planes[1:]:
        total = total + plane * plane
    return total


def planes_norm(planes: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Euclidean norm of vectors given by their coordinate planes, and its reciprocal.

    ``planes``: one tensor per coordinate, broadcastable to one shape; returns two tensors of
    that shape (see :func:`sqrt_and_reciprocal` for the zero vector).
    """
    return sqrt_and_reciprocal(sum_of_squares(planes))
