"""Wrapping and nearest-image arithmetic for the flat torus and the flat Klein bottle.

Pure tensor functions (dtype/device of the inputs, differentiable where it matters) shared by
:class:`~moduli.manifolds.torus.Torus`, :class:`~moduli.manifolds.klein_bottle.KleinBottle`
and their geoopt counterparts.

Klein bottle convention: fundamental domain ``[0, p)^2`` with ``(x, y) ~ (x + p, p - y)`` and
``(x, y) ~ (x, y + p)``. The images of a point ``(x, y)`` are exactly
``(x + a p, (-1)^a y + b p)`` for integers ``a, b`` (``p - y`` is ``-y`` up to a y-translate).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "signed_residual",
    "wrap_into_period",
    "torus_wrap",
    "torus_difference",
    "klein_wrap",
    "klein_difference",
]


def signed_residual(u: Tensor, spacing: float) -> Tensor:
    """``u`` minus the nearest multiple of ``spacing``: values in ``[-spacing/2, spacing/2]``.

    ``round`` has zero gradient, so the derivative is 1 everywhere (also at the ties).
    """
    return u - spacing * torch.round(u / spacing)


def wrap_into_period(x: Tensor, period: float) -> tuple[Tensor, Tensor]:
    """Wrap ``x`` into ``[0, period)`` and return ``(wrapped, k)`` with ``x = wrapped + k*period``.

    ``k`` (same dtype as ``x``, no gradient) counts the whole periods removed. The result is
    strictly below ``period`` even when rounding of ``x - k*period`` lands on ``period``
    (e.g. x = -1e-9 in float32), and ``k`` stays consistent with the returned value, which
    decides the Klein bottle's flip.
    """
    k = torch.floor(x.detach() / period)
    wrapped = x - k * period
    # "low" first: adding a period to a tiny negative value can round up to exactly
    # ``period``, which the second fix then maps to 0.
    too_low = wrapped < 0
    wrapped = torch.where(too_low, wrapped + period, wrapped)
    k = k - too_low.to(k.dtype)
    too_high = wrapped >= period
    wrapped = torch.where(too_high, wrapped - period, wrapped)
    k = k + too_high.to(k.dtype)
    return wrapped, k


def torus_wrap(x: Tensor, period: float) -> Tensor:
    """Representative of torus points in ``[0, period)^dim``; shape ``(..., dim)`` kept."""
    return wrap_into_period(x, period)[0]


def torus_difference(x: Tensor, y: Tensor, period: float) -> Tensor:
    """Shortest displacement from ``x`` to an image of ``y`` on the flat torus, ``(..., dim)``."""
    return signed_residual(y - x, period)


def klein_wrap(x: Tensor, period: float) -> tuple[Tensor, Tensor]:
    """Representative in ``[0, period)^2`` of Klein-bottle points ``(..., 2)``.

    Returns ``(points, odd)`` where ``odd`` (bool, shape ``(...)``) marks points whose x
    coordinate was wrapped an odd number of times, i.e. whose y coordinate was mirrored.
    """
    u, k = wrap_into_period(x[..., 0], period)
    odd = torch.remainder(k, 2) == 1
    v, _ = wrap_into_period(torch.where(odd, -x[..., 1], x[..., 1]), period)
    return torch.stack((u, v), dim=-1), odd


def klein_difference(x: Tensor, y: Tensor, period: float) -> tuple[Tensor, Tensor]:
    """Shortest displacement from ``x`` to an image of ``y`` on the flat Klein bottle.

    Works for any representatives (inside or outside the fundamental domain). Among the
    images ``(y0 + a p, (-1)^a y1 + b p)`` the best even-``a`` image has x offset
    ``dx mod 2p`` and y offset ``dy mod p``; the best odd-``a`` image has x offset
    ``(dx + p) mod 2p`` and y offset ``(-y1 - x1) mod p`` (all residuals centred on 0).
    Returns ``(difference (..., 2), odd (...))`` with ``odd`` true where the odd image wins.
    """
    dx = y[..., 0] - x[..., 0]
    even = torch.stack(
        (signed_residual(dx, 2.0 * period), signed_residual(y[..., 1] - x[..., 1], period)), dim=-1
    )
    odd_image = torch.stack(
        (signed_residual(dx + period, 2.0 * period), signed_residual(-y[..., 1] - x[..., 1], period)),
        dim=-1,
    )
    odd = (odd_image * odd_image).sum(-1) < (even * even).sum(-1)
    return torch.where(odd.unsqueeze(-1), odd_image, even), odd
