"""The moduli penalty of a learned embedding with closed-form gradients, in row blocks.

For neuron positions ``x`` (N, coord_dim) and a weight matrix ``W`` (N, N), with the inhibitor
written as a function of the squared distance, f(d) = g(s), s_ij = d(x_i, x_j)^2::

    P       = scale * sum_ij g(s_ij) |W_ij|^l
    dP/dW   = scale * g(s_ij) * l |W_ij|^(l-1) sign(W_ij)
    dP/dx_i = scale * sum_j [ g'(s_ij) |W_ij|^l ds(x_i, x_j)/dx_i + g'(s_ji) |W_ji|^l ds(x_j, x_i)/dx_i ]

The rows are processed in blocks of B: every temporary is a (B, N) plane (one per coordinate
at most), never an (N, N, coord_dim) tensor. When a gradient is wanted the forward pass computes
it in the same loop as the value and keeps dP/dW (N x N, the tensor the backward pass returns)
and dP/dx; the backward pass only scales them. What a block needs comes from the
manifold (:meth:`~moduli.manifolds.Manifold.squared_distance_and_gradients`) and the inhibitor
(:meth:`~moduli.inhibitors.Inhibitor.at_squared_distance`), so one kernel serves every space;
squared distances need no square root on the flat spaces. On a space with ``exact_symmetry``
the two terms of dP/dx_i share one evaluation per pair (``g'(s_ij) (|W_ij|^l + |W_ji|^l)
ds(x_i, x_j)/dx_i``); otherwise the second orientation is evaluated as autograd evaluates it, so
both agree at the seams too.

The block functions run as plain PyTorch, or compiled by ``torch.compile`` into a few fused
loops per block (benchmark P2, N = 1024 on one CPU thread: a training step with the learned
penalty costs 1.08x the step without it compiled, 1.24x uncompiled; compiling took 43 s with an
empty cache, once per process and size). A failed compilation warns once and falls back to plain
PyTorch.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .inhibitors import Inhibitor
from .manifolds import Manifold

__all__ = ["fused_penalty", "block_rows"]

# Pairs per block, measured on CPU at N = 1024 and 4096: uncompiled, a block's ~20 temporary (B, N)
# planes stay in L2 cache; compiled, larger blocks make the compiled gradient loop several times slower.
CPU_BLOCK_ELEMENTS = 1 << 16
COMPILED_CPU_BLOCK_ELEMENTS = 1 << 17
DEVICE_BLOCK_ELEMENTS = 1 << 22  # accelerators: few, large kernels; ~20 planes of 16 MiB in float32


def block_rows(n: int, device: torch.device, compiled: bool = False) -> int:
    """Rows per block for N = ``n`` neurons: blocks of equal size (the last may be smaller)."""
    if device.type != "cpu":
        budget = DEVICE_BLOCK_ELEMENTS
    else:
        budget = COMPILED_CPU_BLOCK_ELEMENTS if compiled else CPU_BLOCK_ELEMENTS
    largest = max(1, budget // max(n, 1))
    blocks = math.ceil(n / largest)
    return math.ceil(n / blocks)


def _magnitude(w: Tensor, exponent: int) -> Tensor:
    return w.abs() if exponent == 1 else w * w


def _magnitude_derivative(w: Tensor, exponent: int) -> Tensor:
    """d|w|^l / dw: sign(w) (0 at 0, as autograd through abs) or 2 w."""
    return w.sign() if exponent == 1 else 2.0 * w


def _value_block(manifold: Manifold, inhibitor: Inhibitor, exponent: int, rows: Tensor, points: Tensor, w_rows: Tensor) -> Tensor:
    """sum_ij f(d(rows_i, points_j)) |w_rows_ij|^l; rows (c, B, 1), points (c, 1, N), w_rows (B, N) -> 0-d."""
    s, _, _ = manifold.squared_distance_and_gradients(rows, points, gradients=False)
    f = inhibitor.at_squared_distance(s)[0].to(w_rows.dtype)
    return (f * _magnitude(w_rows, exponent)).sum()


def _gradient_block(
    manifold: Manifold,
    inhibitor: Inhibitor,
    exponent: int,
    rows: Tensor,
    points: Tensor,
    w_rows: Tensor,
    w_cols: Tensor,
    scale: Tensor,
    grad_w_rows: Tensor,
) -> tuple[Tensor, Tensor]:
    """sum_j f |w|^l of each row (B,) and dP/dx of the block's neurons (B, c); writes dP/dW of its
    rows into ``grad_w_rows`` (B, N).

    rows (c, B, 1) and points (c, 1, N): coordinates first; w_rows = W[rows, :] (B, N) and
    w_cols = W[:, rows] (N, B), views of W (a compiled block reads the columns in tiles instead of
    copying them); scale: 0-d tensor (strength, mean reduction).
    """
    wt_rows = w_cols.t()
    s, s_x, _ = manifold.squared_distance_and_gradients(rows, points)
    f, slope = inhibitor.at_squared_distance(s)
    f = f.to(w_rows.dtype)
    magnitude = _magnitude(w_rows, exponent)
    grad_w_rows.copy_((scale * f) * _magnitude_derivative(w_rows, exponent))
    slope = slope.to(w_rows.dtype)
    if manifold.exact_symmetry:
        # the pair (j, i) has the same distance and ds(x_j, x_i)/dx_i = ds(x_i, x_j)/dx_i
        a = scale * slope * (magnitude + _magnitude(wt_rows, exponent))
        grad_x = torch.stack([(a * g).sum(1) for g in s_x], dim=-1)
    else:
        a = scale * slope * magnitude
        # the pairs (j, i), evaluated with the arguments in that order: entry [b, n] is s(x_n, x_b)
        s_t, _, s_t_y = manifold.squared_distance_and_gradients(points, rows)
        a_t = scale * inhibitor.at_squared_distance(s_t)[1].to(w_rows.dtype) * _magnitude(wt_rows, exponent)
        grad_x = torch.stack([(a * g).sum(1) + (a_t * h).sum(1) for g, h in zip(s_x, s_t_y)], dim=-1)
    return (f * magnitude).sum(1), grad_x


_FAILED: dict[str, str] = {}  # block kind -> why compiling it failed (then it runs uncompiled)


@functools.lru_cache(maxsize=64)
def _compiled(kind: str, manifold: Manifold, inhibitor: Inhibitor, exponent: int) -> Callable:
    """The block function ``kind`` ("value" | "gradient") for one configuration, compiled (cached)."""
    block = _value_block if kind == "value" else _gradient_block
    return torch.compile(functools.partial(block, manifold, inhibitor, exponent), dynamic=False)


def _run_block(kind: str, compiled: bool, manifold: Manifold, inhibitor: Inhibitor, exponent: int, *args: Tensor):
    if compiled and kind not in _FAILED:
        try:
            return _compiled(kind, manifold, inhibitor, exponent)(*args)
        except Exception as err:  # no C++ compiler / Triton, an unsupported op: run uncompiled
            _FAILED[kind] = f"{type(err).__name__}: {err}".splitlines()[0]
            warnings.warn(
                f"torch.compile of the fused moduli penalty failed ({_FAILED[kind]}); running it uncompiled "
                "(same values, slower). Set ModuliRegularizer.penalty_path = 'fused' to skip compiling.",
                RuntimeWarning,
                stacklevel=3,
            )
    block = _value_block if kind == "value" else _gradient_block
    return block(manifold, inhibitor, exponent, *args)


class _FusedPenalty(torch.autograd.Function):
    """P(points, weight) as one autograd node.

    When a gradient is wanted, the forward pass computes it too, in the same loop over each block
    (training always asks for both), and keeps dP/dW (N x N) and dP/dx for the backward pass, which
    only multiplies them by the incoming gradient. Otherwise it computes the value alone.
    """

    @staticmethod
    def forward(ctx, points: Tensor, weight: Tensor, manifold: Manifold, inhibitor: Inhibitor, exponent: int, scale: float, compiled: bool) -> Tensor:
        n = weight.shape[0]
        step = block_rows(n, weight.device, compiled)
        pts = points.detach().t().contiguous()  # (c, N): one contiguous row per coordinate
        total = weight.new_zeros(())
        if not any(ctx.needs_input_grad[:2]):
            for start in range(0, n, step):
                rows = pts[:, start:start + step].unsqueeze(2)
                total = total + _run_block("value", compiled, manifold, inhibitor, exponent, rows, pts.unsqueeze(1), weight[start:start + step])
            return total * scale
        factor = torch.tensor(scale, dtype=weight.dtype, device=weight.device)
        grad_w = torch.empty_like(weight)
        grad_x = torch.empty((n, points.shape[1]), dtype=weight.dtype, device=weight.device)
        for start in range(0, n, step):
            stop = min(start + step, n)
            rows = pts[:, start:stop].unsqueeze(2)
            value_rows, grad_x[start:stop] = _run_block(
                "gradient", compiled, manifold, inhibitor, exponent,
                rows, pts.unsqueeze(1), weight[start:stop], weight[:, start:stop], factor, grad_w[start:stop],
            )
            total = total + value_rows.sum()
        ctx.save_for_backward(grad_w, grad_x.to(points.dtype))
        return total * scale

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        grad_w, grad_x = ctx.saved_tensors
        grad_points = grad_x * grad.to(grad_x.dtype) if ctx.needs_input_grad[0] else None
        grad_weight = grad_w * grad.to(grad_w.dtype) if ctx.needs_input_grad[1] else None
        return grad_points, grad_weight, None, None, None, None, None


def fused_penalty(
    manifold: Manifold,
    inhibitor: Inhibitor,
    points: Tensor,
    weight: Tensor,
    exponent: int,
    scale: float,
    compiled: bool = False,
) -> Tensor:
    """``scale * sum_ij f(d(points_i, points_j)) |weight_ij|^exponent`` as a 0-d tensor.

    points: (N, coord_dim) on ``manifold``; weight: (N, N) floating; exponent 1 or 2. Gradients
    reach ``points`` and ``weight`` (closed forms, once differentiable). ``compiled``: run the
    block functions through ``torch.compile``.
    """
    return _FusedPenalty.apply(points, weight, manifold, inhibitor, exponent, float(scale), bool(compiled))
