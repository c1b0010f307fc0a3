"""moduli: geometric sparsification of recurrent neural networks.

Neurons of an Elman RNN are placed on a manifold; a penalty f(d(i, j)) * |w_ij|^l on the recurrent
weights makes connectivity local there; pruning then keeps the local connections.
"""

from __future__ import annotations

from typing import Any

from .inhibitors import DoG, Constant, Diffusion, Gaussian, Identity, Inhibitor, Ripple, get_inhibitor
from .manifolds import Circle, Euclidean, KleinBottle, Manifold, Product, Sphere, Torus, get_manifold
from .regularizer import ModuliRegularizer

__version__ = "0.1.0"


def train(config: Any, overrides: list[str] | tuple[str, ...] = (), quiet: bool = True) -> dict[str, Any]:
    """Train one run from a config (a YAML path, a list of paths, or a ``RunConfig``); returns its summary.

    Example: ``moduli.train("configs/navigation.yaml", ["train.epochs=2"])``.
    """
    from .config import RunConfig, load_config
    from .training import run_config

    if not isinstance(config, RunConfig):
        paths = [config] if isinstance(config, (str, bytes)) or hasattr(config, "__fspath__") else list(config)
        config = load_config(paths, overrides)
    elif overrides:
        raise ValueError("overrides apply to config files; pass a RunConfig without overrides, or paths with them")
    return run_config(config, quiet=quiet)


__all__ = [
    "Circle", "Constant", "Diffusion", "DoG", "Euclidean", "Gaussian", "Identity", "Inhibitor",
    "KleinBottle", "Manifold", "ModuliRegularizer", "Product", "Ripple", "Sphere", "Torus",
    "get_inhibitor", "get_manifold", "train",
]
