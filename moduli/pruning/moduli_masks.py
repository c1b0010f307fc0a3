"""Moduli pruning: every neuron keeps its connections to its nearest neighbours on the manifold.

The ranking uses the regulariser's coefficient matrix C = f(D) (shape (N, N), C[j, k] the
penalty coefficient of the connection k -> j): a low coefficient marks a connection the
geometry favours, so low coefficients are kept and high ones pruned.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .masks import Masks, check_masks, check_sparsity, check_weights


def _normalised_ranks(x: Tensor, per_row: bool) -> Tensor:
    """Ascending rank of every entry of the 2-D tensor ``x`` scaled to [0, 1].

    Ranked within each row if ``per_row``, else over the whole matrix; ties go to the
    earlier position (stable sort). Returns float64 of ``x``'s shape.
    """
    flat = x if per_row else x.reshape(1, -1)
    order = torch.sort(flat, dim=1, stable=True).indices
    positions = torch.arange(flat.shape[1], device=x.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions).to(torch.float64)
    if flat.shape[1] > 1:
        ranks /= flat.shape[1] - 1
    return ranks.reshape(x.shape)


def moduli_masks(
    coefficients: Mapping[str, Tensor],
    sparsity: float,
    weights: Mapping[str, Tensor] | None = None,
    magnitude_weight: float = 0.0,
    per_neuron: bool = True,
    previous: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Masks that keep, for every neuron, the connections with the smallest coefficients.

    Args:
        coefficients: name -> coefficient matrix f(D) of shape (N_out, N_in) (for W_hh:
            (N, N); row j holds the incoming connections k -> j of neuron j).
        sparsity: fraction of entries pruned in every matrix, 0 <= sparsity < 1.
        weights: name -> weight of the same shape; needed when ``magnitude_weight > 0``.
        magnitude_weight: alpha in [0, 1]. Entries are ranked by the score
            (1 - alpha) * rank(coefficient) + alpha * rank(-|w|), ranks scaled to [0, 1];
            the highest scores are pruned. alpha = 0: pure geometry, alpha = 1: pure magnitude.
        per_neuron: True = prune ``round(sparsity * N_in)`` entries in every row, so every
            neuron keeps the same number of incoming connections (ranks taken per row);
            False = prune ``round(sparsity * N_out * N_in)`` entries of the whole matrix.
        previous: optional earlier masks; their pruned entries stay pruned and count
            towards the target (per row when ``per_neuron``).

    Returns:
        name -> bool mask (True = kept) with the shape and device of the coefficients.

    Ties are broken deterministically: among equal coefficients (or equal blended
    scores) the entry at the lower position is kept and the later one pruned.
    """
    check_weights(coefficients, what="coefficients")
    sparsity = check_sparsity(sparsity)
    if isinstance(magnitude_weight, bool) or not isinstance(magnitude_weight, (int, float)):
        raise TypeError(f"magnitude_weight must be a float in [0, 1], got {type(magnitude_weight).__name__}")
    alpha = float(magnitude_weight)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"magnitude_weight must lie in [0, 1] (0 = geometry only), got {alpha!r}")
    if not isinstance(per_neuron, bool):
        raise TypeError(f"per_neuron must be a bool, got {type(per_neuron).__name__}")
    for name, c in coefficients.items():
        if c.dim() != 2:
            raise ValueError(
                f"coefficients[{name!r}] must be a 2-D matrix (N_out, N_in), got shape {tuple(c.shape)}"
            )
        if not c.is_floating_point():
            raise TypeError(f"coefficients[{name!r}] must be floating point, got dtype {c.dtype}")
        if bool(torch.isnan(c).any()):
            raise ValueError(f"coefficients[{name!r}] contains NaN; fix the distance or inhibitor")
    if alpha > 0.0 and weights is None:
        raise ValueError(f"magnitude_weight={alpha} blends in |w|: pass weights for {list(coefficients)}")
    if weights is not None:
        check_weights(weights)
        missing = [name for name in coefficients if name not in weights]
        if missing:
            raise ValueError(f"weights lacks {missing}; give a weight for every coefficient matrix")
        for name, c in coefficients.items():
            if tuple(weights[name].shape) != tuple(c.shape):
                raise ValueError(
                    f"weights[{name!r}] has shape {tuple(weights[name].shape)} but its coefficients "
                    f"have shape {tuple(c.shape)}; they must match"
                )
    previous = {} if previous is None else previous
    check_masks(previous, coefficients, what="previous")
    for name, prev in previous.items():
        rows, cols = prev.shape
        if per_neuron:
            k, already = int(round(sparsity * cols)), (~prev).sum(dim=1).max().item()
        else:
            k, already = int(round(sparsity * rows * cols)), (~prev).sum().item()
        if already > k:
            where = "in some row" if per_neuron else "in total"
            raise ValueError(
                f"previous[{name!r}] already prunes {int(already)} entries {where}, more than the "
                f"target {k}; raise sparsity or drop previous"
            )

    masks: Masks = {}
    for name, coeff in coefficients.items():
        coeff = coeff.detach()
        rows, cols = coeff.shape
        # Ascending score = order of preference to keep; with alpha = 0 the raw coefficients
        # give the same order as their ranks, so the rank computation is skipped.
        score = coeff
        if alpha > 0.0:
            w = weights[name].detach().to(coeff.device)
            magnitude_rank = _normalised_ranks(-w.abs().to(torch.float64), per_neuron)
            score = (1.0 - alpha) * _normalised_ranks(coeff, per_neuron) + alpha * magnitude_rank
        if name in previous:
            score = score.masked_fill(~previous[name].to(coeff.device), float("inf"))
        if per_neuron:
            k = int(round(sparsity * cols))
            order = torch.sort(score, dim=1, stable=True).indices[:, cols - k :]
            keep = torch.ones(rows, cols, dtype=torch.bool, device=coeff.device)
            keep.scatter_(1, order, False)
        else:
            k = int(round(sparsity * rows * cols))
            order = torch.sort(score.reshape(-1), stable=True).indices[rows * cols - k :]
            keep = torch.ones(rows * cols, dtype=torch.bool, device=coeff.device)
            keep[order] = False
            keep = keep.reshape(rows, cols)
        masks[name] = keep
    return masks
