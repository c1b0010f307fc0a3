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


def unigram_perplexity(train: torch.Tensor, test: torch.Tensor, vocab_size: int) -> float:
    """Perplexity on ``test`` (N,) of the add-one-smoothed unigram model of ``train`` (M,).

    p(w) = (count_train(w) + 1) / (M + vocab_size): the reference a language model must beat
    to have learned anything beyond word frequencies.
    """
    for name, ids in (("train", train), ("test", test)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.numel() == 0 or ids.is_floating_point():
            raise ValueError(f"{name} must be a non-empty 1-D tensor of token ids")
    if int(max(train.max(), test.max())) >= vocab_size:
        raise ValueError(f"token ids must be < vocab_size = {vocab_size}")
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_p = counts.log() - math.log(float(counts.sum()))
    return perplexity(float(-log_p[test].mean()))
