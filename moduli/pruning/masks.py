"""Masks: the common currency of the pruning package.

A mask set (``Masks``) maps a parameter name, exactly as ``model.named_parameters()``
spells it, to a boolean tensor of the same shape as that parameter: True = the weight is
kept, False = the weight is pruned (held at exactly zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

Masks = dict[str, Tensor]
"""Parameter name -> bool tensor of the parameter's shape (True = kept)."""


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """Return ``sparsity`` as a float after checking 0 <= sparsity < 1 (a fraction, not %)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(sparsity).__name__}")
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name} must lie in [0, 1) (a fraction of entries, e.g. 0.9 for 90%), got {value!r}"
        )
    return value


def check_weights(weights: Mapping[str, Tensor], what: str = "weights") -> None:
    """Check that ``weights`` is a non-empty mapping of names to non-empty tensors."""
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"{what} must be a mapping name -> tensor (e.g. dict(model.named_parameters())), "
            f"got {type(weights).__name__}"
        )
    if len(weights) == 0:
        raise ValueError(f"{what} is empty: pass at least one named tensor")
    for name, tensor in weights.items():
        if not isinstance(name, str):
            raise TypeError(f"{what} keys must be parameter names (str), got {name!r}")
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{what}[{name!r}] must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.numel() == 0:
            raise ValueError(f"{what}[{name!r}] has no entries (shape {tuple(tensor.shape)})")


def check_masks(
    masks: Mapping[str, Tensor],
    weights: Mapping[str, Tensor] | None = None,
    what: str = "masks",
    require_all: bool = False,
) -> None:
    """Check that ``masks`` holds bool tensors and, if ``weights`` is given, that every
    mask names a listed weight and has that weight's shape.

    ``require_all=True`` also demands a mask for every weight.
    """
    if not isinstance(masks, Mapping):
        raise TypeError(f"{what} must be a mapping name -> bool tensor, got {type(masks).__name__}")
    for name, mask in masks.items():
        if not isinstance(mask, Tensor):
            raise TypeError(f"{what}[{name!r}] must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dtype != torch.bool:
            raise TypeError(
                f"{what}[{name!r}] has dtype {mask.dtype}; masks must be torch.bool "
                "(True = kept); convert with mask.bool() or (mask != 0)"
            )
    if weights is None:
        return
    unknown = [name for name in masks if name not in weights]
    if unknown:
        raise ValueError(
            f"{what} name(s) {unknown} are not among the weights; available: {list(weights)}"
        )
    if require_all:
        missing = [name for name in weights if name not in masks]
        if missing:
            raise ValueError(f"{what} lacks a mask for {missing}; give one mask per weight")
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(weights[name].shape):
            raise ValueError(
                f"{what}[{name!r}] has shape {tuple(mask.shape)} but the weight has shape "
                f"{tuple(weights[name].shape)}; a mask must have its weight's shape"
            )


def select_parameters(
    model: nn.Module, names: Sequence[str] | None = None
) -> dict[str, nn.Parameter]:
    """Return ``{name: parameter}`` for the requested names of ``model.named_parameters()``.

    ``names=None`` selects every parameter with at least 2 dimensions (weight matrices and
    embeddings; biases and gains are left out). Order follows ``names`` (or the model).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    available = dict(model.named_parameters())
    if names is None:
        return {name: p for name, p in available.items() if p.dim() >= 2}
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            "names must be a sequence of parameter names, e.g. ['rnn.weight_hh_l0'], "
            f"got {type(names).__name__} {names!r}"
        )
    bad_types = [n for n in names if not isinstance(n, str)]
    if bad_types:
        raise TypeError(f"names must be strings, got {bad_types}")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ValueError(f"names lists {duplicates} more than once; list each parameter once")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(
            f"unknown parameter name(s) {unknown}; available parameters: {list(available)}"
        )
    if len(names) == 0:
        raise ValueError("names is empty: list at least one parameter (or pass None for all matrices)")
    return {n: available[n] for n in names}


def owner_of(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """Split a dotted parameter name into (owning submodule, attribute name)."""
    module_path, _, attr = name.rpartition(".")
    module = model.get_submodule(module_path) if module_path else model
    return module, attr


@torch.no_grad()
def apply_masks_(weights: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    """Set the pruned entries (mask False) of each named weight to exactly 0, in place.

    Uses ``masked_fill_`` rather than a product so that inf/NaN entries also become 0.
    """
    for name, mask in masks.items():
        weight = weights[name]
        weight.masked_fill_(~mask.to(weight.device), 0)


def pruned_count(mask: Tensor) -> int:
    """Number of pruned entries (False) of one bool mask."""
    return int(mask.numel() - int(mask.sum().item()))
