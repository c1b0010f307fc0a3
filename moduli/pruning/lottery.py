"""Lottery-ticket control: re-initialise the pruned parameters and keep their final mask."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .masks import apply_masks_, check_masks, owner_of, select_parameters


def lottery_reset(
    model: nn.Module,
    masks: Mapping[str, Tensor],
    init_fn: Callable[[Tensor], Any] | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Re-initialise the parameters named in ``masks`` in place, then apply the masks.

    Only the listed parameters change: by default the owning module's
    ``reset_parameters()`` is called and that module's other parameters are restored
    afterwards. ``init_fn`` (e.g. ``torch.nn.init.orthogonal_``) is instead called on each
    listed parameter under ``torch.no_grad()``. A fresh embedding of the neurons is the
    caller's business (build a new coefficient matrix for the retraining).

    Args:
        model: the model holding the parameters.
        masks: parameter name -> bool mask (True = kept), e.g. the final masks of a pruned run.
        init_fn: in-place initialiser of one tensor; None = the modules' ``reset_parameters``.
        generator: seeds the re-initialisation reproducibly without disturbing the global RNG
            (one seed is drawn from it); None = the global RNG as is.
    """
    check_masks(masks)
    if len(masks) == 0:
        raise ValueError("masks is empty: give the masks of the parameters to re-initialise")
    params = select_parameters(model, list(masks))
    check_masks(masks, params)
    if init_fn is not None and not callable(init_fn):
        raise TypeError(f"init_fn must be callable on a tensor, got {type(init_fn).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    owners: dict[int, nn.Module] = {}  # id(module) -> module, in first-seen order
    if init_fn is None:
        for name in params:
            module, _ = owner_of(model, name)
            if not callable(getattr(module, "reset_parameters", None)):
                raise ValueError(
                    f"parameter {name!r} belongs to a {type(module).__name__} without reset_parameters(); "
                    "pass init_fn (e.g. torch.nn.init.xavier_uniform_)"
                )
            owners[id(module)] = module

    def reinitialise() -> None:
        if init_fn is not None:
            with torch.no_grad():
                for param in params.values():
                    init_fn(param)
            return
        listed = {id(p) for p in params.values()}
        for module in owners.values():
            # reset_parameters may reset more than the listed tensors: restore the others.
            others = [p for p in module.parameters() if id(p) not in listed]
            saved = [p.detach().clone() for p in others]
            module.reset_parameters()
            with torch.no_grad():
                for param, value in zip(others, saved):
                    param.copy_(value)

    if generator is None:
        reinitialise()
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        cuda_devices = sorted({p.device.index or 0 for p in params.values() if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(seed)
            reinitialise()
    apply_masks_(params, masks)
