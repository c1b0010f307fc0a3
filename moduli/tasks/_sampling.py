"""Argument checks shared by the on-the-fly task samplers."""

from __future__ import annotations

import torch


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int, else raise one clear error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_positive_float(name: str, value: object, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    bound_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (bound_ok and value < float("inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def resolve_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device:
    """Device on which to sample: ``device`` if given, else the generator's, else CPU.

    A ``torch.Generator`` draws only on its own device type (a CUDA generator
    lives on the GPU), so a mismatch is reported before any sampling.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if device is None:
        resolved = generator.device if generator is not None else torch.device("cpu")
    else:
        if not isinstance(device, (torch.device, str)):
            raise TypeError(f"device must be a torch.device, str or None, got {type(device).__name__}")
        resolved = torch.device(device)
    if generator is not None and generator.device.type != resolved.type:
        raise ValueError(
            f"generator lives on {generator.device} but sampling was requested on {resolved}; "
            f"create the generator with torch.Generator(device='{resolved.type}')"
        )
    return resolved
