"""Named manifolds of the experiments: ``get_manifold(name, **overrides)``."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .base import Manifold
from .circle import Circle
from .euclidean import Euclidean
from .klein_bottle import KleinBottle
from .product import Product
from .sphere import Sphere
from .torus import Torus

__all__ = ["MANIFOLDS", "get_manifold", "manifold_from_config"]


def _mixed(sphere_dim: int, radius: float, torus_dim: int, period: float) -> Manifold:
    return Product(Sphere(sphere_dim, radius), Torus(torus_dim, period))


# name -> (factory, default keyword arguments); a default of None marks a required argument
_REGISTRY: dict[str, tuple[Callable[..., Manifold], dict[str, Any]]] = {
    "torus": (Torus, {"dim": 2, "period": 10.0}),
    "torus6": (Torus, {"dim": 6, "period": 10.0}),
    "klein": (KleinBottle, {"period": 10.0}),
    "circle": (Circle, {"radius": 5.0}),
    "sphere": (Sphere, {"dim": 2, "radius": 5.0}),
    "s3": (Sphere, {"dim": 3, "radius": 10.0}),
    "mixed": (_mixed, {"sphere_dim": 2, "radius": 5.0, "torus_dim": 2, "period": 10.0}),
    "r3": (Euclidean, {"dim": 3}),
    "r9": (Euclidean, {"dim": 9}),
    "euclidean": (Euclidean, {"dim": None}),
}

MANIFOLDS: tuple[str, ...] = tuple(_REGISTRY)  # names accepted by get_manifold


def get_manifold(name: str, **kwargs: Any) -> Manifold:
    """Build the manifold registered as ``name``; ``kwargs`` override its defaults.

    Example: ``get_manifold("torus", period=5.0)`` is ``Torus(2, 5.0)``;
    ``get_manifold("euclidean", dim=4)`` is ``Euclidean(4)`` (``dim`` required there).
    """
    if not isinstance(name, str):
        raise TypeError(f"manifold name must be a str, one of {list(MANIFOLDS)}; got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown manifold {name!r}; allowed names: {', '.join(MANIFOLDS)}")
    factory, defaults = _REGISTRY[name]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(
            f"manifold {name!r} does not take {unknown}; allowed keyword arguments: {sorted(defaults)}"
        )
    args = {**defaults, **kwargs}
    missing = sorted(k for k, v in args.items() if v is None)
    if missing:
        raise ValueError(f"manifold {name!r} requires {missing}, e.g. get_manifold({name!r}, dim=3)")
    return factory(**args)


def manifold_from_config(config: Mapping[str, Any]) -> Manifold:
    """Inverse of ``Manifold.to_config``: ``{"name": ..., **arguments}`` -> manifold.

    Accepts every registry name plus ``{"name": "product", "factors": [config, ...]}``.
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"manifold config must be a mapping with a 'name' key, got {config!r}")
    rest = {k: v for k, v in config.items() if k != "name"}
    if config["name"] == "product":
        factors = rest.pop("factors", None)
        if rest or not isinstance(factors, (list, tuple)):
            raise ValueError(f"product config must be {{'name': 'product', 'factors': [configs]}}, got {config!r}")
        return Product(*(manifold_from_config(f) for f in factors))
    return get_manifold(config["name"], **rest)
