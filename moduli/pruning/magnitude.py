"""Magnitude pruning: remove the entries of smallest absolute value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import Tensor

from .masks import Masks, check_masks, check_sparsity, check_weights, pruned_count


def _score_dtype(tensors: list[Tensor]) -> torch.dtype:
    """float64 if any input is float64, otherwise float32 (sorting half types is avoided)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _prune_lowest(scores: Tensor, k: int) -> Tensor:
    """Bool keep-mask over flat ``scores`` with the ``k`` lowest entries False.

    Ties at the threshold are broken by position (the earlier entry is pruned first), the
    same result as a stable sort, found with one selection (``kthvalue``) instead of a sort.
    """
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k == 0:
        return keep
    threshold = torch.kthvalue(scores, k).values
    below = scores < threshold
    keep &= ~below
    missing = k - int(below.sum().item())  # entries still to prune among those == threshold
    at_threshold = torch.nonzero(scores == threshold).reshape(-1)
    keep[at_threshold[:missing]] = False
    return keep


def magnitude_masks(
    weights: Mapping[str, Tensor],
    sparsity: float,
    scope: Literal["global", "layerwise"] = "global",
    previous: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Masks that prune exactly ``round(sparsity * n)`` entries of smallest ``|w|``.

    Args:
        weights: name -> weight tensor (any shape). With ``scope="global"`` all tensors must
            live on one device; they are flattened and concatenated in mapping order.
        sparsity: fraction of entries to prune, 0 <= sparsity < 1.
        scope: "global" = one threshold over all tensors together, n = total entry count;
            "layerwise" = each tensor pruned on its own, n = that tensor's entry count.
        previous: optional earlier masks (name -> bool, same shapes; a subset of the names is
            allowed). Their pruned entries stay pruned and count towards the target, so the
            target may not be smaller than the number already pruned.

    Returns:
        name -> bool mask of the weight's shape and device (True = kept).

    Ties in ``|w|`` are broken deterministically: the entry that comes first in the
    concatenation order is pruned first. ``round`` is Python's (half to even).
    """
    check_weights(weights)
    sparsity = check_sparsity(sparsity)
    if scope not in ("global", "layerwise"):
        raise ValueError(f"scope must be 'global' or 'layerwise', got {scope!r}")
    previous = {} if previous is None else previous
    check_masks(previous, weights, what="previous")
    for name, w in weights.items():
        if not w.is_floating_point():
            raise TypeError(f"weights[{name!r}] must be a real floating tensor, got dtype {w.dtype}")
        if bool(torch.isnan(w).any()):
            raise ValueError(f"weights[{name!r}] contains NaN; magnitudes cannot be ranked")
    if scope == "global":
        devices = {w.device for w in weights.values()}
        if len(devices) > 1:
            raise ValueError(
                f"global magnitude pruning needs all weights on one device, got {sorted(map(str, devices))}; "
                "move them to one device or use scope='layerwise'"
            )
        groups = [list(weights)]
    else:
        groups = [[name] for name in weights]

    # Check every group's target against its already-pruned count before doing any work.
    targets = []
    for group in groups:
        n = sum(weights[name].numel() for name in group)
        k = int(round(sparsity * n))
        already = sum(pruned_count(previous[name]) for name in group if name in previous)
        if already > k:
            label = "all weights" if scope == "global" else repr(group[0])
            raise ValueError(
                f"previous masks already prune {already} of {n} entries of {label}, more than the "
                f"target round({sparsity} * {n}) = {k}; raise sparsity to at least {already / n:.6g} "
                "or drop previous"
            )
        targets.append(k)

    masks: Masks = {}
    for group, k in zip(groups, targets):
        tensors = [weights[name].detach() for name in group]
        dtype = _score_dtype(tensors)
        parts = []
        for name, w in zip(group, tensors):
            score = w.abs().to(dtype).reshape(-1)
            if name in previous:
                pruned = ~previous[name].to(w.device).reshape(-1)
                score = score.masked_fill(pruned, float("-inf"))
            parts.append(score)
        scores = torch.cat(parts)
        keep = _prune_lowest(scores, k)
        for name, chunk in zip(group, torch.split(keep, [t.numel() for t in tensors])):
            masks[name] = chunk.reshape(weights[name].shape)
    return masks
