"""Initialisation rules of the recurrent matrices W_hh (``model.recurrent_init``).

- ``default``: torch.nn.RNN's, every entry ~ U(-1/sqrt(N), 1/sqrt(N)) (the paper's models). Under
  ReLU its spectral radius is about 0.6, so the initial state fades within a few steps.
- ``identity``: ``scale * I`` (Le et al.'s IRNN): a ReLU network with zero input keeps its state.
- ``orthogonal``: a random orthogonal matrix times ``scale`` (torch.nn.init.orthogonal_).
- ``he_uniform``: U(-sqrt(6/N), sqrt(6/N)) (torch.nn.init.kaiming_uniform_ for ReLU, fan-in N).
"""

from __future__ import annotations

import torch
from torch import Tensor

RECURRENT_INITS: tuple[str, ...] = ("default", "identity", "orthogonal", "he_uniform")
SCALED_INITS: tuple[str, ...] = ("identity", "orthogonal")  # the rules that take a scale (gain)


def check_recurrent_init(kind: str, scale: float) -> None:
    """Raise ValueError unless ``kind`` is a known rule and ``scale`` a usable factor for it."""
    if kind not in RECURRENT_INITS:
        raise ValueError(f"recurrent_init must be one of {', '.join(RECURRENT_INITS)}, got {kind!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"recurrent_init_scale must be a number > 0, got {scale!r}")
    if scale != 1.0 and kind not in SCALED_INITS:
        raise ValueError(
            f"recurrent_init_scale = {scale} only applies to {' or '.join(SCALED_INITS)}, not {kind!r}; "
            "leave it at 1"
        )


@torch.no_grad()
def init_recurrent_(weight: Tensor, kind: str, scale: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Overwrite the (N, N) ``weight`` in place by rule ``kind``; ``default`` leaves it unchanged.

    ``generator`` (None: the global RNG) draws the orthogonal and He-uniform matrices.
    """
    check_recurrent_init(kind, scale)
    if weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
        raise ValueError(f"weight must be a square (N, N) matrix, got shape {tuple(weight.shape)}")
    if kind == "identity":
        weight.copy_(torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device) * scale)
    elif kind == "orthogonal":
        torch.nn.init.orthogonal_(weight, gain=scale, generator=generator)
    elif kind == "he_uniform":
        torch.nn.init.kaiming_uniform_(weight, a=0.0, mode="fan_in", nonlinearity="relu", generator=generator)
    return weight
