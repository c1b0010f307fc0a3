"""Bonds: modules without weights (mass 0), each with a hand-declared sensitivity.

Sensitivities are estimates of the input Lipschitz constant in the RMS norm, as in Modula:
1 for the linear and normalising maps, 1/sqrt(2) for ReLU and GELU (so that
``ScaledReLU = sqrt(2) * ReLU`` has sensitivity 1), 1 for attention with scale 1/d_head.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .abstract import Bond, CompositeModule
from .checks import check_real
from .vector import Vector


def _check_dim(dim: int | Sequence[int], what: str) -> int | tuple[int, ...]:
    if isinstance(dim, bool) or not isinstance(dim, (numbers.Integral, tuple, list)):
        raise TypeError(f"{what}: dim must be an int or a tuple of ints, got {dim!r}")
    if isinstance(dim, (tuple, list)):
        if not dim or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in dim):
            raise TypeError(f"{what}: dim must be a non-empty tuple of ints, got {dim!r}")
        return tuple(int(d) for d in dim)
    return int(dim)


def _as_sequence(x: Any, what: str, length: int | None = None) -> Sequence[Tensor]:
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{what} takes a list or tuple of tensors (the output of a tuple module), got {type(x).__name__}")
    if length is not None and len(x) != length:
        raise ValueError(f"{what} takes {length} inputs, got {len(x)}")
    return x


class Identity(Bond):
    """``x -> x``. Sensitivity 1."""

    def forward(self, x: Any, w: Vector) -> Any:
        return x


class Flatten(Bond):
    """Flatten every dimension from ``start_dim`` on: (N, C, H, W) -> (N, C*H*W). Sensitivity 1."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__(1.0)
        if isinstance(start_dim, bool) or not isinstance(start_dim, numbers.Integral):
            raise TypeError(f"Flatten(start_dim) needs an int, got {start_dim!r}")
        self.start_dim: int = int(start_dim)  # first dimension folded into the last one

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return x.flatten(start_dim=self.start_dim)


class Abs(Bond):
    """Elementwise absolute value. Sensitivity 1."""

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return x.abs()


class Add(Bond):
    """Sum of a list of tensors (the output of a tuple module). Sensitivity 1.

    ``A + B`` builds ``Add() @ (A, B)``, whose sensitivity is then ``s_A + s_B``.
    """

    def forward(self, x: Sequence[Tensor], w: Vector) -> Tensor:
        xs = _as_sequence(x, "Add")
        if not xs:
            raise ValueError("Add needs at least one input tensor")
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out


class Mul(Bond):
    """Scale the input by a nonzero real ``a`` (elementwise on a list input). Sensitivity ``|a|``.

    The absolute value matters: a signed sensitivity would divide a child's target norm by a
    negative number and turn the update into ascent.
    """

    def __init__(self, a: float) -> None:
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(float(a)):
            raise ValueError(f"cannot scale a module by {a!r}: the scalar must be a finite real number")
        if a == 0:
            raise ValueError(
                "cannot scale a module by 0: its sensitivity would be 0 and the target split divides by it; "
                "drop the term instead of multiplying it by 0"
            )
        super().__init__(abs(float(a)))
        self.a: float = float(a)  # the scale factor (may be negative)

    def forward(self, x: Any, w: Vector) -> Any:
        if isinstance(x, (list, tuple)):
            return [self.a * t for t in x]
        return self.a * x

    def __repr__(self) -> str:
        return f"Mul({self.a:g})"


class Mean(Bond):
    """Mean over ``dim`` (the dimension is removed unless ``keepdim``). Sensitivity 1."""

    def __init__(self, dim: int | Sequence[int] = -1, keepdim: bool = False) -> None:
        super().__init__(1.0)
        self.dim: int | tuple[int, ...] = _check_dim(dim, "Mean")  # reduced dimension(s)
        self.keepdim: bool = bool(keepdim)  # keep the reduced dimension(s) with size 1

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return x.mean(dim=self.dim, keepdim=self.keepdim)


class AvgPool(Bond):
    """Global average pooling of images: (N, C, H, W) -> (N, C, 1, 1). Sensitivity 1."""

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return F.adaptive_avg_pool2d(x, (1, 1))


class MeanSubtract(Bond):
    """Subtract the mean over ``dim``: ``x - mean(x)``. Sensitivity 1."""

    def __init__(self, dim: int | Sequence[int] = -1) -> None:
        super().__init__(1.0)
        self.dim: int | tuple[int, ...] = _check_dim(dim, "MeanSubtract")  # dimension(s) averaged over

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return x - x.mean(dim=self.dim, keepdim=True)


class RMSDivide(Bond):
    """Divide by the root mean square over ``dim``: ``x / sqrt(mean(x^2) + eps)``. Sensitivity 1."""

    def __init__(self, dim: int | Sequence[int] = -1, eps: float = 1e-12) -> None:
        super().__init__(1.0)
        self.dim: int | tuple[int, ...] = _check_dim(dim, "RMSDivide")  # dimension(s) of the RMS
        self.eps: float = check_real(eps, "RMSDivide: eps")  # keeps a zero input finite

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=self.dim, keepdim=True) + self.eps)


class LayerNorm(CompositeModule):
    """``RMSDivide(dim) @ MeanSubtract(dim)``: layer norm without learned scale or bias. Sensitivity 1."""

    def __init__(self, dim: int | Sequence[int] = -1, eps: float = 1e-12) -> None:
        super().__init__(RMSDivide(dim, eps), MeanSubtract(dim))

    def __repr__(self) -> str:
        return "LayerNorm()"


class ReLU(Bond):
    """``max(x, 0)``. Sensitivity 1/sqrt(2) (ReLU halves the mean square of a symmetric input)."""

    def __init__(self) -> None:
        super().__init__(1.0 / math.sqrt(2.0))

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return F.relu(x)


class ScaledReLU(Bond):
    """``sqrt(2) * max(x, 0)``, i.e. ``sqrt(2) * ReLU()`` as one bond. Sensitivity 1."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return math.sqrt(2.0) * F.relu(x)


class GELU(Bond):
    """The GELU nonlinearity. Sensitivity 1/sqrt(2)."""

    def __init__(self) -> None:
        super().__init__(1.0 / math.sqrt(2.0))

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return F.gelu(x)


class ScaledGELU(Bond):
    """``sqrt(2) * GELU(x)``, i.e. ``sqrt(2) * GELU()`` as one bond. Sensitivity 1."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return math.sqrt(2.0) * F.gelu(x)


class Tanh(Bond):
    """Elementwise tanh. Sensitivity 1 (its slope is at most 1)."""

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return torch.tanh(x)


class Select(Bond):
    """Pick element ``index`` of a list/tuple input (e.g. one output of a tuple module). Sensitivity 1."""

    def __init__(self, index: int) -> None:
        super().__init__(1.0)
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"Select(index) needs an int, got {index!r}")
        self.index: int = int(index)  # position of the selected element

    def forward(self, x: Sequence[Any], w: Vector) -> Any:
        xs = _as_sequence(x, "Select")
        if not -len(xs) <= self.index < len(xs):
            raise IndexError(f"Select({self.index}) on an input of {len(xs)} elements")
        return xs[self.index]

    def __repr__(self) -> str:
        return f"Select({self.index})"


class SplitIntoHeads(Bond):
    """(B, T, H * d) -> (B, H, T, d): split the feature dimension into ``num_heads`` heads. Sensitivity 1."""

    def __init__(self, num_heads: int) -> None:
        super().__init__(1.0)
        if isinstance(num_heads, bool) or not isinstance(num_heads, numbers.Integral) or num_heads < 1:
            raise ValueError(f"SplitIntoHeads(num_heads) needs a positive int, got {num_heads!r}")
        self.num_heads: int = int(num_heads)  # number of attention heads H

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        *lead, t, d = x.shape
        if d % self.num_heads:
            raise ValueError(f"feature dimension {d} is not divisible by num_heads={self.num_heads}")
        return x.reshape(*lead, t, self.num_heads, d // self.num_heads).transpose(-3, -2)


class MergeHeads(Bond):
    """(B, H, T, d) -> (B, T, H * d): inverse of ``SplitIntoHeads``. Sensitivity 1."""

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        *lead, h, t, d = x.shape
        return x.transpose(-3, -2).reshape(*lead, t, h * d)


class Enumerate(Bond):
    """Token ids (..., T) -> positions ``arange(T)`` (on the input's device), for position embeddings.

    Sensitivity 1 (the output does not depend on the input's values; only the read-out's target split
    of the modules *before* it would use this number, and there are none in a GPT).
    """

    def __init__(self, context: int | None = None) -> None:
        super().__init__(1.0)
        if context is not None and (isinstance(context, bool) or not isinstance(context, numbers.Integral) or context < 1):
            raise ValueError(f"Enumerate(context) needs a positive int or None, got {context!r}")
        self.context: int | None = None if context is None else int(context)  # longest allowed sequence

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        t = x.shape[-1]
        if self.context is not None and t > self.context:
            raise ValueError(f"sequence length {t} exceeds the context length {self.context}; build the model with a larger context")
        return torch.arange(t, device=x.device)


class FunctionalAttention(Bond):
    """Scaled dot-product attention of a ``(q, k, v)`` list, scale 1/d_head (not 1/sqrt(d_head)).

    Shapes: q, k (B, H, T, d_q), v (B, H, T, d_v) -> (B, H, T, d_v). Causal by default.
    Sensitivity 1, as in Modula (the 1/d_head scale keeps the softmax's slope bounded as d grows).
    """

    def __init__(self, causal: bool = True) -> None:
        super().__init__(1.0)
        if not isinstance(causal, bool):
            raise TypeError(f"FunctionalAttention(causal) needs a bool, got {causal!r}")
        self.causal: bool = causal  # mask the future (position t sees positions <= t)

    def forward(self, x: Sequence[Tensor], w: Vector) -> Tensor:
        q, k, v = _as_sequence(x, "FunctionalAttention", length=3)
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=1.0 / q.shape[-1])

    def __repr__(self) -> str:
        return f"FunctionalAttention(causal={self.causal})"


__all__ = [
    "Abs",
    "Add",
    "AvgPool",
    "Enumerate",
    "Flatten",
    "FunctionalAttention",
    "GELU",
    "Identity",
    "LayerNorm",
    "Mean",
    "MeanSubtract",
    "MergeHeads",
    "Mul",
    "RMSDivide",
    "ReLU",
    "ScaledGELU",
    "ScaledReLU",
    "Select",
    "SplitIntoHeads",
    "Tanh",
]
