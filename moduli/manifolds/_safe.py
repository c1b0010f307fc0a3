"""Square roots and norms with finite gradients everywhere.

All helpers work in the dtype and on the device of their inputs and have finite gradients
everywhere, including at the points where the plain formulas are singular (sqrt at 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["safe_sqrt", "safe_norm"]


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
