"""Gradient accumulation: sum micro-batch gradients, then take one normalised step.

Run: ``python experiments/examples/gradient_accumulation.py``. ``main`` returns the full-batch loss
at every step. Each micro-batch loss is weighted by its share of the batch, so the accumulated
gradient equals the gradient of the full-batch mean loss.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

try:
    import modula_core  # noqa: F401
except ImportError:  # run as a script from a checkout: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modula_core import Module, Vector
from modula_core.compound import MLP


def accumulated_gradient(model: Module, weights: Vector, data: Tensor, target: Tensor, micro_batch: int) -> tuple[Vector, float]:
    """Gradient of the mean squared error over the batch, accumulated micro-batch by micro-batch.

    data (B, d_in), target (B, d_out). Returns (gradient Vector, full-batch loss). Clears the
    weights' ``.grad`` first and leaves the accumulated gradient there.
    """
    if data.shape[0] != target.shape[0]:
        raise ValueError(f"data and target hold {data.shape[0]} and {target.shape[0]} examples; they must match")
    if not isinstance(micro_batch, int) or micro_batch < 1:
        raise ValueError(f"micro_batch must be a positive int, got {micro_batch!r}")
    weights.zero_grad()
    batch, total = data.shape[0], 0.0
    for start in range(0, batch, micro_batch):
        x, y = data[start : start + micro_batch], target[start : start + micro_batch]
        loss = (model(x, weights) - y).square().mean()
        (loss * (x.shape[0] / batch)).backward()  # weight by the micro-batch's share of the batch
        total += loss.item() * x.shape[0] / batch
    return weights.grad(), total


def main(
    steps: int = 50, batch: int = 64, micro_batch: int = 16, width: int = 64, depth: int = 3, lr: float = 0.1, seed: int = 0, verbose: bool = False
) -> list[float]:
    """Regress random targets from random inputs with an MLP; one normalised step per accumulated batch."""
    gen = torch.Generator().manual_seed(seed)
    model = MLP(output_dim=4, input_dim=16, width=width, depth=depth)
    weights = model.initialize(generator=gen)
    data, target = torch.randn(batch, 16, generator=gen), torch.randn(batch, 4, generator=gen)
    losses = []
    for step in range(steps):
        grad, loss = accumulated_gradient(model, weights, data, target, micro_batch)
        with torch.no_grad():
            model.normalize(grad)
            weights -= lr * grad
            weights.zero_grad()
        losses.append(loss)
        if verbose:
            print(step, loss)
    return losses


if __name__ == "__main__":
    main(verbose=True)
