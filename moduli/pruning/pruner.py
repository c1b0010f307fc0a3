"""Pruner: holds masks for named parameters of a model and keeps pruned weights at zero."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .masks import Masks, apply_masks_, check_masks, select_parameters
from .report import SparsityReport, sparsity_report


class Pruner:
    """Masks for named parameters of ``model``, enforced through training.

    Pruned weights are held at exactly zero by two mechanisms: a gradient hook on every
    masked parameter zeroes the masked entries of its gradient (so gradient clipping and
    the optimizer moments see no signal there), and an optimizer step post-hook re-applies
    the masks after every ``optimizer.step()`` (so weight decay, momentum and stale Adam
    moments from before pruning cannot revive a pruned weight).

    Usage::

        pruner = Pruner(model, masks)      # applies the masks at once
        pruner.attach(optimizer)
        ...                                # train as usual
        pruner.update(new_masks)           # e.g. at the start of the next epoch
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor], apply: bool = True) -> None:
        """``masks``: parameter name -> bool tensor of the parameter's shape (True = kept).
        ``apply=False`` leaves the weights untouched until ``apply_()`` is called."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model: nn.Module = model  # the model whose parameters are masked
        self.masks: Masks = {}  # parameter name -> bool mask on the parameter's device
        self._params: dict[str, nn.Parameter] = {}  # parameter name -> masked parameter
        self._grad_handles: list[RemovableHandle] = []  # gradient hooks, one per parameter
        self._step_handles: list[RemovableHandle] = []  # optimizer step post-hooks
        self._set_masks(masks)
        if apply:
            self.apply_()

    def _set_masks(self, masks: Mapping[str, Tensor]) -> None:
        check_masks(masks)
        if len(masks) == 0:
            raise ValueError("masks is empty: give at least one parameter name -> bool mask")
        params = select_parameters(self.model, list(masks))
        check_masks(masks, params)
        for handle in self._grad_handles:
            handle.remove()
        self._grad_handles = []
        self._params = params
        self.masks = {name: mask.detach().to(params[name].device) for name, mask in masks.items()}
        for name, param in params.items():
            if param.requires_grad:
                self._grad_handles.append(param.register_hook(self._grad_hook(name)))

    def _mask_on(self, name: str, device: torch.device) -> Tensor:
        """The mask of ``name`` on ``device`` (moved and cached if the model was moved)."""
        mask = self.masks[name]
        if mask.device != device:
            mask = mask.to(device)
            self.masks[name] = mask
        return mask

    def _grad_hook(self, name: str):
        def hook(grad: Tensor) -> Tensor:
            return grad.masked_fill(~self._mask_on(name, grad.device), 0)

        return hook

    @property
    def weights(self) -> dict[str, nn.Parameter]:
        """Parameter name -> masked parameter."""
        return dict(self._params)

    @torch.no_grad()
    def apply_(self) -> None:
        """Set every pruned weight to exactly zero, in place."""
        for name, param in self._params.items():
            self._mask_on(name, param.device)
        apply_masks_(self._params, self.masks)

    def attach(self, optimizer: torch.optim.Optimizer) -> Pruner:
        """Re-apply the masks after every ``optimizer.step()``; returns ``self``."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in held for p in self._params.values()):
            raise ValueError(
                f"the optimizer updates none of the masked parameters {list(self._params)}; "
                "attach the optimizer that trains them"
            )
        self._step_handles.append(optimizer.register_step_post_hook(self._after_step))
        return self

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.apply_()

    def detach(self) -> None:
        """Remove the gradient hooks and optimizer hooks; masks and weights stay as they are."""
        for handle in self._grad_handles + self._step_handles:
            handle.remove()
        self._grad_handles = []
        self._step_handles = []

    def update(self, masks: Mapping[str, Tensor]) -> None:
        """Replace the masks (names may change) and apply them at once."""
        attached = self._step_handles
        self._set_masks(masks)
        self._step_handles = attached
        self.apply_()

    def report(self) -> SparsityReport:
        """Sparsity of the masked parameters (see ``sparsity_report``)."""
        return sparsity_report(self._params, self.masks)

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """``{"masks": {name: bool CPU tensor}}``; loadable with ``torch.load(weights_only=True)``."""
        return {"masks": {name: mask.detach().cpu().clone() for name, mask in self.masks.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load masks saved by ``state_dict`` and apply them."""
        if not isinstance(state, Mapping) or "masks" not in state:
            raise ValueError("state must be a mapping with key 'masks', as returned by Pruner.state_dict()")
        self.update(state["masks"])

    def __repr__(self) -> str:
        return f"Pruner(params={list(self._params)}, sparsity={self.report().sparsity:.4f})"
