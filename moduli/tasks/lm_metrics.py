"""Language-model metrics: perplexity and next-token accuracy."""

from __future__ import annotations

import math

import torch


def perplexity(mean_cross_entropy: float | torch.Tensor) -> float:
    """``exp`` of a mean per-token cross-entropy in nats; ``inf`` if it overflows."""
    if isinstance(mean_cross_entropy, torch.Tensor):
        if mean_cross_entropy.numel() != 1:
            raise ValueError(
                f"mean_cross_entropy must be a scalar, got shape {tuple(mean_cross_entropy.shape)}"
            )
        mean_cross_entropy = float(mean_cross_entropy)
    if isinstance(mean_cross_entropy, bool) or not isinstance(mean_cross_entropy, (int, float)):
        raise TypeError(f"mean_cross_entropy must be a number, got {type(mean_cross_entropy).__name__}")
    if math.isnan(mean_cross_entropy) or mean_cross_entropy < 0:
        raise ValueError(f"mean_cross_entropy must be a non-negative number of nats, got {mean_cross_entropy}")
    try:
        return math.exp(mean_cross_entropy)
    except OverflowError:
        return math.inf


def next_token_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of positions where the arg-max of ``logits`` (..., V) equals ``target`` (...)."""
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("logits and target must be torch.Tensors")
    if logits.dim() < 1 or logits.shape[:-1] != target.shape:
        raise ValueError(
            f"logits must have shape target.shape + (V,), got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if target.numel() == 0:
        raise ValueError("target is empty: accuracy is undefined")
    return float((logits.argmax(dim=-1) == target).float().mean())
