"""moduli: geometric sparsification of recurrent neural networks.

Neurons of an Elman RNN are placed on a manifold; a penalty f(d(i, j)) * |w_ij|^l on the recurrent
weights makes connectivity local there; pruning then keeps the local connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names below load on first use, so that the command line starts without importing
# torch (`moduli --help` needs none of them).
_INHIBITORS = ("Constant", "Diffusion", "DoG", "Gaussian", "Identity", "Inhibitor", "Ripple", "get_inhibitor")
_MANIFOLDS = ("Circle", "Euclidean", "KleinBottle", "Manifold", "Product", "Sphere", "Torus", "get_manifold")

if TYPE_CHECKING:
    from .inhibitors import DoG, Constant, Diffusion, Gaussian, Identity, Inhibitor, Ripple, get_inhibitor
    from .manifolds import Circle, Euclidean, KleinBottle, Manifold, Product, Sphere, Torus, get_manifold
    from .regularizer import ModuliRegularizer


def __getattr__(name: str) -> Any:
    if name in _INHIBITORS:
        from . import inhibitors as module
    elif name in _MANIFOLDS:
        from . import manifolds as module
    elif name == "ModuliRegularizer":
        from . import regularizer as module
    else:
        raise AttributeError(f"module 'moduli' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_INHIBITORS) | set(_MANIFOLDS) | {"ModuliRegularizer"})


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
