"""Train an MLP on one random input/target pair with modular normalisation (Modula's hello world).

Run: ``python experiments/examples/hello_world.py``. ``main`` returns the loss at every step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

try:
    import modula_core  # noqa: F401
except ImportError:  # run as a script from a checkout: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modula_core.atom import Linear
from modula_core.bond import ReLU


def main(
    steps: int = 20, input_dim: int = 1000, width: int = 10000, output_dim: int = 10, lr: float = 0.1, seed: int = 0, verbose: bool = False
) -> list[float]:
    """Fit ``Linear(output_dim, width) @ ReLU() @ Linear(width, input_dim)`` to random data.

    Each step normalises the gradient in the modular norm, takes a step of size ``lr`` and applies
    decoupled weight decay of strength 0.01. Returns the squared-error loss before every step.
    """
    if steps < 1 or input_dim < 1 or width < 1 or output_dim < 1:
        raise ValueError("steps, input_dim, width and output_dim must be positive ints")
    gen = torch.Generator().manual_seed(seed)
    mlp = Linear(output_dim, width) @ ReLU() @ Linear(width, input_dim)
    weights = mlp.initialize(device="cpu", generator=gen)
    data, target = torch.randn(input_dim, generator=gen), torch.randn(output_dim, generator=gen)

    losses = []
    for step in range(steps):
        output = mlp(data, weights)
        loss = (target - output).square().mean()
        loss.backward()
        with torch.no_grad():
            mlp.normalize(grad := weights.grad())  # unit modular norm
            weights -= lr * grad
            weights.zero_grad()
            mlp.regularize(weights, strength=0.01)
        losses.append(loss.item())
        if verbose:
            print(step, losses[-1])
    return losses


if __name__ == "__main__":
    main(verbose=True)
