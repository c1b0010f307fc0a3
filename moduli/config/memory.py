"""The memory a run needs, estimated from its config and checked against the device before
anything is allocated (a hopeless size is refused with one line instead of an allocator traceback).

The estimate counts what grows with the square of the hidden size N, per recurrent layer: the
fp32 W_hh, its gradient, the optimiser's state, the penalty's coefficient matrix, the pruning mask
and one temporary of the penalty or the pruning; plus the hidden states kept for the backward pass
(time steps x batch x N). Everything else (input, decoder and embedding matrices, data) is left out,
so the estimate is a lower bound of what training takes.
"""

from __future__ import annotations

import os

from .schema import RunConfig

__all__ = ["training_bytes", "device_memory", "check_memory", "format_bytes"]

_OPTIMISER_STATES = {"adamw": 2, "adam": 2, "modular_adam": 2, "sgd": 0, "modular_sgd": 0}  # fp32 tensors per weight


def _bytes_per_recurrent_weight(cfg: RunConfig) -> int:
    states = _OPTIMISER_STATES.get(cfg.optim.name, 2) + (1 if cfg.optim.name.endswith("sgd") and cfg.optim.momentum > 0 else 0)
    total = 4 * (1 + 1 + states + 1)  # weight, gradient, optimiser state, one temporary
    if cfg.regularizer.kind != "none":
        total += 4  # coefficient matrix
    if cfg.pruning.method != "none":
        total += 1  # boolean mask
    return total


def training_bytes(cfg: RunConfig) -> int:
    """Estimated bytes of training ``cfg``'s model (a lower bound; see the module docstring)."""
    from ..tasks.registry import task_class

    n, layers = cfg.model.hidden_size, cfg.model.num_layers
    _, time_steps = task_class(cfg.task).forward_flops(cfg)
    states = 4 * time_steps * cfg.train.batch_size * n * layers
    return _bytes_per_recurrent_weight(cfg) * n * n * layers + states


def device_memory(device: str) -> tuple[int, str] | None:
    """(bytes of memory, its name) of ``device`` ("auto", "cpu", "cuda", "cuda:N"), or None if unknown."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return torch.cuda.get_device_properties(index).total_memory, f"the memory of {device}"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"
    except (ValueError, OSError, AttributeError):  # no sysconf names (not Linux / macOS)
        return None


def format_bytes(count: float) -> str:
    """``512 MiB``, ``3.2 GiB``, ``2.4 PiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"


def _largest_hidden_size(cfg: RunConfig, available: int) -> int:
    """The largest hidden size whose :func:`training_bytes` (a quadratic a N^2 + b N) fits ``available``."""
    import dataclasses
    import math

    def needed(n: int) -> int:
        return training_bytes(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden_size=n)))

    quadratic, linear = (needed(2) - 2 * needed(1)) / 2, (4 * needed(1) - needed(2)) / 2
    n = int((-linear + math.sqrt(linear * linear + 4 * quadratic * available)) / (2 * quadratic))
    while n > 1 and needed(n) > available:  # floating-point rounding of the root
        n -= 1
    while needed(n + 1) <= available:
        n += 1
    return n


def check_memory(cfg: RunConfig) -> None:
    """Raise ConfigError if training ``cfg`` cannot fit in the memory of its device."""
    from .validate import config_error

    memory = device_memory(cfg.train.device)
    if memory is None:
        return
    available, name = memory
    needed = training_bytes(cfg)
    if needed <= available:
        return
    largest, per_weight = _largest_hidden_size(cfg, available), _bytes_per_recurrent_weight(cfg)
    raise config_error(
        f"model.hidden_size = {cfg.model.hidden_size} needs at least {format_bytes(needed)} to train "
        f"({per_weight} bytes per recurrent weight: the weights, their gradients, the optimiser state, the penalty "
        f"coefficients and mask; and the hidden states), more than {name} ({format_bytes(available)}); allowed here: "
        f"model.hidden_size at most {largest}"
    )
