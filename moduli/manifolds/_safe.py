"""Numerically careful helpers shared by the manifolds.

All helpers work in the dtype and on the device of their inputs and have finite gradients
everywhere, including at the points where the plain formulas are singular (sqrt at 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["safe_sqrt", "safe_norm", "lattice_residual", "wrap_into_period"]


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


def lattice_residual(u: Tensor, spacing: float, shift: float = 0.0) -> Tensor:
    """Distance from each entry of ``u`` to the nearest point of ``shift + spacing * Z``.

    Result lies in ``[0, spacing / 2]``; same shape/dtype/device as ``u``. The gradient is
    ``sign`` of the residual (0 at the lattice points, finite at the midpoints).
    """
    t = u - shift
    # round() has zero gradient, so d(residual)/du = +-1 away from ties.
    t = t - spacing * torch.round(t / spacing)
    return t.abs()


def wrap_into_period(x: Tensor, period: float) -> tuple[Tensor, Tensor]:
    """Wrap ``x`` into ``[0, period)`` and return ``(wrapped, k)`` with ``x = wrapped + k*period``.

    ``k`` (same dtype as ``x``, no gradient) counts the whole periods removed. The result is
    guaranteed to be strictly below ``period`` even when floating-point rounding of
    ``x - k*period`` lands exactly on ``period`` (e.g. x = -1e-9 in float32); ``k`` is kept
    consistent with the returned value, which matters for the Klein bottle's flip.
    """
    k = torch.floor(x.detach() / period)
    wrapped = x - k * period
    # Fix rounding at both ends; "low" first because adding a period to a tiny negative
    # value can round up to exactly ``period``, which the second fix then maps to 0.
    too_low = wrapped < 0
    wrapped = torch.where(too_low, wrapped + period, wrapped)
    k = k - too_low.to(k.dtype)
    too_high = wrapped >= period
    wrapped = torch.where(too_high, wrapped - period, wrapped)
    k = k + too_high.to(k.dtype)
    return wrapped, k
