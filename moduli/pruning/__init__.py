"""Sparsification of named weight tensors of any torch model.

Masks are ``dict[str, torch.BoolTensor]``: parameter name (as in ``model.named_parameters()``)
-> bool tensor of the parameter's shape, True = kept.
"""

from .lottery import lottery_reset
from .magnitude import magnitude_masks
from .masks import Masks, apply_masks_, check_masks, select_parameters
from .moduli_masks import moduli_masks
from .pruner import Pruner
from .random_masks import random_masks_like
from .report import MatrixSparsity, SparsityReport, sparsity_report
from .schedules import CubicSchedule, LinearRamp, OneShot, SparsitySchedule
from .torch_prune import from_torch_prune, remove_torch_prune, to_torch_prune

__all__ = [
    "Masks",
    "select_parameters",
    "check_masks",
    "apply_masks_",
    "magnitude_masks",
    "random_masks_like",
    "moduli_masks",
    "SparsitySchedule",
    "LinearRamp",
    "CubicSchedule",
    "OneShot",
    "Pruner",
    "lottery_reset",
    "MatrixSparsity",
    "SparsityReport",
    "sparsity_report",
    "to_torch_prune",
    "from_torch_prune",
    "remove_torch_prune",
]
