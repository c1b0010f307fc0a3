"""Interoperation with ``torch.nn.utils.prune``."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from torch.nn.utils import prune

from .masks import Masks, check_masks, owner_of, select_parameters


def to_torch_prune(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Attach ``masks`` to ``model`` with ``prune.custom_from_mask``, in place.

    Afterwards every listed parameter ``<module>.<attr>`` is stored as ``<attr>_orig``
    (a parameter) and ``<attr>_mask`` (a float buffer), and ``<attr>`` is recomputed as
    their product before each forward pass. A parameter already under torch pruning
    gets the product of its old and new masks (torch's own rule).
    """
    check_masks(masks)
    if len(masks) == 0:
        raise ValueError("masks is empty: give at least one parameter name -> bool mask")
    params = select_parameters(model, list(masks))
    check_masks(masks, params)
    for name, mask in masks.items():
        module, attr = owner_of(model, name)
        prune.custom_from_mask(module, attr, mask.to(params[name].device))


def from_torch_prune(model: nn.Module) -> Masks:
    """Read the masks of every parameter under ``torch.nn.utils.prune`` in ``model``.

    Returns:
        original parameter name (as before pruning, e.g. ``"rnn.weight_hh_l0"``) -> bool mask
        (True = kept); empty if nothing is pruned.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    masks: Masks = {}
    for module_name, module in model.named_modules():
        buffers = dict(module.named_buffers(recurse=False))
        params = dict(module.named_parameters(recurse=False))
        for buffer_name, buffer in buffers.items():
            if not buffer_name.endswith("_mask"):
                continue
            attr = buffer_name[: -len("_mask")]
            if attr + "_orig" not in params:
                continue
            full = f"{module_name}.{attr}" if module_name else attr
            masks[full] = buffer != 0
    return masks


def remove_torch_prune(model: nn.Module) -> list[str]:
    """Make torch pruning permanent (``prune.remove``): the masked product becomes the
    parameter again. Returns the parameter names that were unpruned this way."""
    names = list(from_torch_prune(model))
    for name in names:
        module, attr = owner_of(model, name)
        prune.remove(module, attr)
    return names
