"""Random pruning control: random masks matching given masks' per-matrix zero counts."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .masks import Masks, check_masks, pruned_count


def random_masks_like(
    masks: Mapping[str, Tensor],
    generator: torch.Generator | None = None,
    previous: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Uniformly random masks with exactly as many pruned entries per tensor as ``masks``.

    Args:
        masks: name -> bool mask (True = kept); only the number of False entries of each
            tensor is used.
        generator: source of randomness. Random permutations are drawn on the generator's
            device and moved to each mask's device, so a seeded CPU generator gives the same
            masks on CPU and GPU. ``None`` uses the global RNG of each mask's device.
        previous: optional earlier random masks (a subset of the names is allowed). Their
            pruned entries stay pruned; the remaining zeros are drawn uniformly among the
            entries ``previous`` keeps (for gradual schedules).

    Returns:
        name -> bool mask with the same shape and device as ``masks[name]``.
    """
    check_masks(masks)
    if len(masks) == 0:
        raise ValueError("masks is empty: pass the masks whose per-tensor sparsity is to be matched")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    previous = {} if previous is None else previous
    check_masks(previous, masks, what="previous")
    zeros = {name: pruned_count(mask) for name, mask in masks.items()}
    for name, prev in previous.items():
        already = pruned_count(prev)
        if already > zeros[name]:
            raise ValueError(
                f"previous[{name!r}] already prunes {already} entries but masks[{name!r}] prunes "
                f"only {zeros[name]}; previous must not prune more than the masks to match"
            )

    out: Masks = {}
    for name, mask in masks.items():
        n = mask.numel()
        device = generator.device if generator is not None else mask.device
        perm = torch.randperm(n, generator=generator, device=device)
        keep = torch.ones(n, dtype=torch.bool, device=device)
        need = zeros[name]
        if name in previous:
            prev_keep = previous[name].reshape(-1).to(device)
            keep &= prev_keep
            need -= n - int(prev_keep.sum().item())
            perm = perm[prev_keep[perm]]  # candidates in random order, all still kept
        keep[perm[:need]] = False
        out[name] = keep.reshape(mask.shape).to(mask.device)
    return out
