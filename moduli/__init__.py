"""moduli: geometric sparsification of recurrent neural networks.

Neurons of an Elman RNN are placed on a manifold; a penalty f(d(i, j)) * |w_ij|^l on the recurrent
weights makes connectivity local there; pruning then keeps the local connections.
"""

from __future__ import annotations

from typing import Any

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public names and the submodule defining each. They load on first use, so that the command line
# starts without importing torch (`moduli --help` needs none of them).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("Constant", "Diffusion", "DoG", "Gaussian", "Identity", "Inhibitor", "Ripple", "get_inhibitor"), "inhibitors"
    ),
    **dict.fromkeys(
        ("Circle", "Euclidean", "KleinBottle", "Manifold", "Product", "Sphere", "Torus", "get_manifold"), "manifolds"
    ),
    "ModuliRegularizer": "regularizer",
}

if TYPE_CHECKING:
    from .inhibitors import DoG, Constant, Diffusion, Gaussian, Identity, Inhibitor, Ripple, get_inhibitor
    from .manifolds import Circle, Euclidean, KleinBottle, Manifold, Product, Sphere, Torus, get_manifold
    from .regularizer import ModuliRegularizer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moduli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
