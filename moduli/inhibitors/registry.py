"""Named inhibitors: ``get_inhibitor(name, **overrides)`` and ``inhibitor_from_config``."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from .base import Inhibitor
from .constant import Constant
from .diffusion import Diffusion
from .dog import DoG
from .gaussian import Gaussian
from .identity import Identity
from .ripple import Ripple

__all__ = ["INHIBITORS", "get_inhibitor", "inhibitor_from_config"]

# name -> inhibitor class (its constructor defaults are the registry defaults)
_REGISTRY: dict[str, type[Inhibitor]] = {
    "dog": DoG,
    "diffusion": Diffusion,
    "ripple": Ripple,
    "gaussian": Gaussian,
    "identity": Identity,
    "constant": Constant,
}

INHIBITORS: tuple[str, ...] = tuple(_REGISTRY)  # names accepted by get_inhibitor


def get_inhibitor(name: str, **kwargs: Any) -> Inhibitor:
    """Build the inhibitor registered as ``name``; ``kwargs`` override its defaults.

    Example: ``get_inhibitor("dog", offset=100.0)``; ``get_inhibitor("constant", value=42.0)``.
    """
    if not isinstance(name, str):
        raise TypeError(f"inhibitor name must be a str, one of {list(INHIBITORS)}; got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"unknown inhibitor {name!r}; allowed names: {', '.join(INHIBITORS)}")
    cls = _REGISTRY[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"inhibitor {name!r} does not take {unknown}; allowed keyword arguments: {allowed}")
    return cls(**kwargs)


def inhibitor_from_config(config: Mapping[str, Any]) -> Inhibitor:
    """Inverse of ``Inhibitor.to_config``: ``{"name": ..., **arguments}`` -> inhibitor."""
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(f"inhibitor config must be a mapping with a 'name' key, got {config!r}")
    return get_inhibitor(config["name"], **{k: v for k, v in config.items() if k != "name"})
