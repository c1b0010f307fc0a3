"""Turn config sections into objects: regulariser factories, optimisers, schedules, pruning masks."""

from __future__ import annotations

from typing import Callable, Mapping

import geoopt
import torch
from torch import Tensor, nn

from modula_core import Module
from modula_core.optim import ModularAdam, ModularSGD

from ..errors import ConfigError
from ..config.schema import OptimConfig, PruningConfig, RegularizerConfig
from ..inhibitors import get_inhibitor
from ..manifolds import get_manifold
from ..models import RecurrentModel
from ..models.elman_stack import RegularizerFactory
from ..pruning import CubicSchedule, LinearRamp, Masks, OneShot, SparsitySchedule, magnitude_masks, moduli_masks, random_masks_like
from ..regularizer import ModuliRegularizer

EMBEDDING_SEED_OFFSET = 7919  # neuron embeddings get their own stream (layer l adds l)


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when available, else CPU; other names are passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but CUDA is not available; use train.device=auto or cpu")
    return device


def regularizer_factory(cfg: RegularizerConfig, seed: int) -> RegularizerFactory | None:
    """A function (layer, hidden size) -> ModuliRegularizer, or None for ``kind: none``."""
    if cfg.kind == "none":
        return None
    common = {"exponent": cfg.exponent, "strength": cfg.strength, "reduction": cfg.reduction}

    def build(layer: int, hidden: int) -> ModuliRegularizer:
        generator = torch.Generator().manual_seed(seed + EMBEDDING_SEED_OFFSET + layer)
        if cfg.kind == "l1":
            return ModuliRegularizer.l1(hidden, generator=generator, **common)
        if cfg.kind == "mean_matched_l1":
            return ModuliRegularizer.mean_matched_l1(
                hidden, reference_manifold=get_manifold(cfg.manifold),
                reference_inhibitor=get_inhibitor(cfg.inhibitor), generator=generator, rule=cfg.mean_matched,
                **common,
            )
        manifold = get_manifold(cfg.manifold)
        points = manifold.random(hidden, generator=generator)
        if cfg.embedding_init_scale != 1.0:  # R^d only (validated): scale x N(0, 1)
            points = cfg.embedding_init_scale * points
        return ModuliRegularizer(
            manifold, hidden, get_inhibitor(cfg.inhibitor), learn_embedding=cfg.learn_embedding,
            permute=cfg.permute, invert=cfg.invert, generator=generator, points=points, **common,
        )

    return build


def frozen_regularizers(model: RecurrentModel) -> RegularizerFactory | None:
    """A factory handing out ``model``'s regularisers with their current positions fixed (the
    lottery model that reuses the trained embedding), or None if ``model`` has none."""
    regs = model.rnn.regularizers
    if regs is None:
        return None
    frozen = [reg.frozen() for reg in regs]
    return lambda layer, hidden: frozen[layer]


def build_optimizers(
    cfg: OptimConfig,
    model: RecurrentModel,
    embedding_lr: float,
    embedding_optimizer: str = "riemannian_adam",
    structure: Callable[[RecurrentModel], tuple[Module, list[nn.Parameter]]] | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """The weights' optimiser and, for learned neuron positions, RiemannianAdam at
    ``embedding_lr`` (``embedding_optimizer="riemannian_adam"``); with ``"shared"`` the positions
    join the weights' optimiser as a second parameter group (same hyper-parameters) and the
    second result is None. The modular optimisers need ``structure``: the task's
    ``modular_structure`` (model -> (compound, parameters in its weight order))."""
    if embedding_optimizer not in ("riemannian_adam", "shared"):
        raise ValueError(f"embedding_optimizer must be 'riemannian_adam' or 'shared', got {embedding_optimizer!r}")
    weights = model.weight_parameters()
    embeddings = model.embedding_parameters()
    if embeddings and embedding_optimizer == "shared" and cfg.name not in ("adamw", "adam", "sgd"):
        raise ValueError(f"shared embedding optimisation needs optimiser adamw, adam or sgd, got {cfg.name!r}")
    if embeddings and embedding_optimizer == "shared":
        weights = [{"params": weights}, {"params": embeddings}]
    if cfg.name == "adamw":
        optimizer = torch.optim.AdamW(weights, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    elif cfg.name == "adam":
        optimizer = torch.optim.Adam(weights, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        optimizer = torch.optim.SGD(weights, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        if structure is None:
            raise ValueError(f"optimiser {cfg.name!r} needs the model's modular structure (the task's modular_structure)")
        module, ordered = structure(model)
        if cfg.name == "modular_adam":
            optimizer = ModularAdam(ordered, module, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        else:
            optimizer = ModularSGD(ordered, module, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if not embeddings or embedding_optimizer == "shared":
        return optimizer, None
    return optimizer, geoopt.optim.RiemannianAdam(embeddings, lr=embedding_lr)


def build_lr_scheduler(cfg: OptimConfig, optimizer: torch.optim.Optimizer):
    """ReduceLROnPlateau on the validation loss (the language model's "divide by 4"), or None.

    Any decrease of the validation loss counts as an improvement (threshold 0), as in the
    research code's ``val_loss < best_val_loss``."""
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, threshold=0.0
        )
    return None


def build_pruning_schedule(cfg: PruningConfig, epochs: int) -> SparsitySchedule | None:
    """Sparsity as a function of the epoch index, reaching ``target`` at the last epoch."""
    if cfg.method == "none":
        return None
    if cfg.schedule == "linear":
        return LinearRamp(cfg.target, epochs)
    if cfg.schedule == "cubic":
        return CubicSchedule(cfg.target, 0, max(epochs - 1, 1))
    return OneShot(cfg.target, at=epochs - 1)


def compute_masks(
    cfg: PruningConfig,
    weights: Mapping[str, Tensor],
    sparsity: float,
    previous: Masks | None,
    coefficients: Mapping[str, Tensor],
    generator: torch.Generator,
) -> Masks:
    """Masks at ``sparsity`` for the configured method.

    ``magnitude`` prunes the smallest |w| (global or layerwise). ``random`` and ``moduli`` first
    compute the magnitude masks to fix how many entries each matrix loses, then choose WHICH
    entries at random (the control) or by distance on the manifold (recurrent matrices named in
    ``coefficients``; the other matrices keep their magnitude masks).
    """
    with torch.no_grad():
        reference = magnitude_masks(weights, sparsity, cfg.scope, previous=previous)
        if cfg.method == "magnitude":
            return reference
        if cfg.method == "random":
            return random_masks_like(reference, generator=generator, previous=previous)
        masks = dict(reference)
        for name, coefficient in coefficients.items():
            matrix_sparsity = 1.0 - reference[name].float().mean().item()
            if not reference[name].any():
                continue  # magnitude pruning removed the whole matrix: nothing is left to choose
            masks.update(
                moduli_masks(
                    {name: coefficient}, matrix_sparsity, weights={name: weights[name]},
                    magnitude_weight=cfg.moduli_magnitude_weight, per_neuron=False,
                    previous=None if previous is None else {name: previous[name]},
                )
            )
        return masks


def named_weights(model: nn.Module, names: list[str]) -> dict[str, nn.Parameter]:
    """``names`` -> parameters, with one clear error naming the unknown ones."""
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ConfigError(
            f"config error: pruning.parameters names {unknown} not in the model; list some of {sorted(params)} "
            "or set pruning.parameters=null (the task's default)"
        )
    return {n: params[n] for n in names}
