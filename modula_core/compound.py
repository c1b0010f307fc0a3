"""Compounds built from atoms and bonds with the module algebra: MLP, ResMLP, ResCNN, GPT.

Masses and sensitivities are inferred by the algebra. With the default arguments:

- ``MLP(.., depth=d)``: mass d, sensitivity (1/sqrt 2)^(d-1);
- ``ResMLP`` / ``ResCNN``: mass 3 (input layer 1 + residual blocks tared to 1 + read-out 1),
  sensitivity 1 (the residual idiom keeps it at 1);
- ``GPT``: mass 1 + blocks_mass + 1 (embeddings tared to 1, blocks tared to ``blocks_mass``, read-out 1).
"""

from __future__ import annotations

import numbers

from .abstract import Module
from .atom import Conv2D, Embed, Linear
from .recurrent import ElmanRNN  # weight-tied recurrence: the project's single Elman RNN
from .bond import (
    Abs,
    AvgPool,
    Enumerate,
    Flatten,
    FunctionalAttention,
    Identity,
    LayerNorm,
    MeanSubtract,
    MergeHeads,
    ReLU,
    RMSDivide,
    ScaledGELU,
    SplitIntoHeads,
)


def _pos(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def residual(block: Module, weight: float) -> Module:
    """``(1 - weight) * Identity() + weight * block``: one residual step (sensitivity stays 1 if block's is).

    ``weight == 1`` (a single block) gives ``block`` itself, since the identity term would be ``0 * Identity()``.
    """
    if not 0 < weight <= 1:
        raise ValueError(f"residual weight must lie in (0, 1], got {weight!r}")
    return block if weight == 1 else (1 - weight) * Identity() + weight * block


def MLP(output_dim: int, input_dim: int, width: int, depth: int) -> Module:
    """``depth`` Linear layers with ReLU between them: (..., input_dim) -> (..., output_dim)."""
    output_dim, input_dim = _pos(output_dim, "output_dim", "MLP"), _pos(input_dim, "input_dim", "MLP")
    width, depth = _pos(width, "width", "MLP"), _pos(depth, "depth", "MLP")
    if depth == 1:
        return Linear(output_dim, input_dim)
    m = Linear(width, input_dim)
    for _ in range(depth - 2):
        m = Linear(width, width) @ ReLU() @ m
    return Linear(output_dim, width) @ ReLU() @ m


def ResMLP(width: int, num_blocks: int, block_depth: int, input_dim: int, output_dim: int) -> Module:
    """Residual MLP: (N, ...) flattened to (N, input_dim) -> (N, output_dim).

    Blocks ``MeanSubtract @ Abs @ Linear @ RMSDivide`` (repeated ``block_depth`` times) in the residual
    idiom ``((1 - 1/L) * Identity() + 1/L * block) ** L`` with L = num_blocks, tared to mass 1.
    """
    width, num_blocks = _pos(width, "width", "ResMLP"), _pos(num_blocks, "num_blocks", "ResMLP")
    block_depth = _pos(block_depth, "block_depth", "ResMLP")
    input_dim, output_dim = _pos(input_dim, "input_dim", "ResMLP"), _pos(output_dim, "output_dim", "ResMLP")
    initial = Linear(width, input_dim) @ Flatten()
    residue = MeanSubtract() @ Abs() @ Linear(width, width) @ RMSDivide()
    blocks = residual(residue**block_depth, 1 / num_blocks) ** num_blocks
    blocks.tare()
    return Linear(output_dim, width) @ blocks @ initial


def ResCNN(width: int, num_blocks: int, block_depth: int, input_dim: int, output_dim: int, kernel_size: int = 3) -> Module:
    """Residual CNN: images (N, input_dim, H, W) -> (N, output_dim).

    The convolutional analogue of ``ResMLP`` (normalising over channels and space), with a head
    ``Linear @ Flatten @ AvgPool``.
    """
    width, num_blocks = _pos(width, "width", "ResCNN"), _pos(num_blocks, "num_blocks", "ResCNN")
    block_depth = _pos(block_depth, "block_depth", "ResCNN")
    input_dim, output_dim = _pos(input_dim, "input_dim", "ResCNN"), _pos(output_dim, "output_dim", "ResCNN")
    kernel_size = _pos(kernel_size, "kernel_size", "ResCNN")
    dims = (1, 2, 3)
    initial = Conv2D(width, input_dim, kernel_size)
    residue = MeanSubtract(dims) @ Abs() @ Conv2D(width, width, kernel_size) @ RMSDivide(dims)
    blocks = residual(residue**block_depth, 1 / num_blocks) ** num_blocks
    blocks.tare()
    return Linear(output_dim, width) @ Flatten() @ AvgPool() @ blocks @ initial


def Attention(num_heads: int, d_embed: int, d_query: int, d_value: int, causal: bool = True) -> Module:
    """Multi-head attention (B, T, d_embed) -> (B, T, d_embed): mass 4, sensitivity 1.

    The tuple (Q, K, V) has sensitivity 3; the factor 1/3 on the attention output brings it back to 1.
    """
    q = SplitIntoHeads(num_heads) @ Linear(num_heads * d_query, d_embed)
    k = SplitIntoHeads(num_heads) @ Linear(num_heads * d_query, d_embed)
    v = SplitIntoHeads(num_heads) @ Linear(num_heads * d_value, d_embed)
    w = Linear(d_embed, num_heads * d_value) @ MergeHeads()
    return w @ (1 / 3 * FunctionalAttention(causal)) @ (q, k, v)


def GPT(
    vocab_size: int,
    num_heads: int,
    d_embed: int,
    d_query: int,
    d_value: int,
    num_blocks: int,
    blocks_mass: float = 5,
    context: int = 1024,
) -> Module:
    """Decoder-only transformer: token ids (B, T) with T <= context -> logits (B, T, vocab_size).

    Input ``1/2 * token embedding + 1/2 * position embedding`` (tared to mass 1); ``num_blocks``
    pre-LayerNorm attention and MLP blocks in the residual idiom with weight 1/(2 num_blocks), tared to
    ``blocks_mass``; read-out ``Linear @ LayerNorm`` (mass 1).
    """
    vocab_size, num_heads = _pos(vocab_size, "vocab_size", "GPT"), _pos(num_heads, "num_heads", "GPT")
    d_embed, d_query, d_value = _pos(d_embed, "d_embed", "GPT"), _pos(d_query, "d_query", "GPT"), _pos(d_value, "d_value", "GPT")
    num_blocks, context = _pos(num_blocks, "num_blocks", "GPT"), _pos(context, "context", "GPT")
    if isinstance(blocks_mass, bool) or not isinstance(blocks_mass, numbers.Real) or not blocks_mass > 0:
        raise ValueError(f"GPT: blocks_mass must be a real number > 0, got {blocks_mass!r}")

    initial = 1 / 2 * Embed(d_embed, vocab_size) + 1 / 2 * (Embed(d_embed, context) @ Enumerate(context))
    initial.tare()
    attention = Attention(num_heads, d_embed, d_query, d_value, causal=True) @ LayerNorm()
    mlp = Linear(d_embed, 4 * d_embed) @ ScaledGELU() @ Linear(4 * d_embed, d_embed) @ LayerNorm()
    step = 1 / (2 * num_blocks)
    blocks = (residual(mlp, step) @ residual(attention, step)) ** num_blocks
    blocks.tare(absolute=blocks_mass)
    final = Linear(vocab_size, d_embed) @ LayerNorm()
    return final @ blocks @ initial


__all__ = ["Attention", "ElmanRNN", "GPT", "MLP", "ResCNN", "ResMLP", "residual"]
