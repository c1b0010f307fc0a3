"""Modular optimisers: SGD and Adam whose every update has modular norm ``lr``.

Each step builds the usual direction (the gradient, SGD's momentum buffer, or Adam's
``m_hat / (sqrt(v_hat) + eps)``), then hands it to the module: ``module.normalize(direction, lr)``
rescales every atom's share to its target in the modular norm (``module.dualize(direction, lr)``
instead when ``dualize=True``: orthogonalised matrices). The update is subtracted from the weights,
then decoupled weight decay ``module.regularize(weights, lr * weight_decay)`` is applied.

They are ``torch.optim.Optimizer`` subclasses, so ``zero_grad``, step hooks and learning-rate
schedulers work. Their ``state_dict`` also carries ``module.buffers_state_dict()`` (the atoms'
power-iteration warm starts), so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .abstract import Module
from .vector import Vector

_MODULE_BUFFERS_KEY = "module_buffers"


def _real(value: Any, name: str, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be a real number in {lo}{low:g}, {high:g}{hi}, got {value!r}")
    return float(value)


class _ModularOptimizer(torch.optim.Optimizer):
    """Shared step: direction -> normalize/dualize to norm ``lr`` -> subtract -> decoupled decay."""

    module: Module  # the module whose modular norm measures the updates

    def __init__(self, params: Sequence[Tensor] | Vector, module: Module, defaults: dict[str, Any]) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"module must be a modula_core Module (the network the weights belong to), got {type(module).__name__}")
        if isinstance(params, Tensor):
            raise TypeError("params must be the ordered list of weight tensors (e.g. the Vector from module.initialize()), not one tensor")
        params = list(params)
        for k, p in enumerate(params):
            if isinstance(p, dict):
                raise TypeError(
                    "parameter groups are not supported: the modular norm splits the learning rate over the "
                    "module itself; pass the weight tensors in the module's order"
                )
            if not isinstance(p, Tensor):
                raise TypeError(f"params[{k}] must be a tensor, got {type(p).__name__}")
        if len(params) != module.length:
            raise ValueError(
                f"module has {module.length} weight tensors but {len(params)} params were given; pass the "
                "Vector returned by module.initialize() (all tensors, in order)"
            )
        if not isinstance(defaults.get("dualize"), bool):
            raise TypeError(f"dualize must be a bool, got {type(defaults.get('dualize')).__name__}")
        self.module = module
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "param_groups", None):
            raise ValueError("a modular optimiser has exactly one parameter group (the module's weights); build a new optimiser instead")
        super().add_param_group(param_group)

    def _direction(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> Vector:
        """The raw (un-normalised) descent direction, a fresh Vector the caller may modify."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One update of modular norm ``lr``; ``closure`` (optional) recomputes and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params: list[Tensor] = group["params"]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        lr = float(group["lr"])
        direction = self._direction(group, params, grads)
        if group["dualize"]:
            update = self.module.dualize(direction, lr)
        else:
            update = direction
            self.module.normalize(update, lr)
        weights = Vector(params)
        weights -= update
        if group["weight_decay"] > 0:
            self.module.regularize(weights, lr * group["weight_decay"])
        return loss

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Optimizer state plus the module's atom buffers (power-iteration warm starts)."""
        state = super().state_dict()
        state[_MODULE_BUFFERS_KEY] = {k: v.detach().clone() for k, v in self.module.buffers_state_dict().items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        buffers = state_dict.pop(_MODULE_BUFFERS_KEY, None)
        super().load_state_dict(state_dict)
        if buffers is not None:
            self.module.load_buffers_state_dict({k: v.detach().clone() for k, v in buffers.items()})


class ModularSGD(_ModularOptimizer):
    """SGD (optionally with heavy-ball momentum ``buf = momentum * buf + g``) normalised in the modular norm.

    ``params``: the module's weight tensors in order; ``lr``: modular norm of every update;
    ``weight_decay``: decoupled, the weights shrink by ``lr * weight_decay`` per step (split by mass).
    """

    def __init__(
        self,
        params: Sequence[Tensor] | Vector,
        module: Module,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dualize: bool = False,
    ) -> None:
        lr = _real(lr, "lr", 0.0)
        momentum = _real(momentum, "momentum", 0.0, 1.0, high_open=True)
        weight_decay = _real(weight_decay, "weight_decay", 0.0)
        super().__init__(params, module, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, dualize=dualize))

    def _direction(self, group, params, grads):
        mu = group["momentum"]
        if mu == 0:
            return Vector(g.clone() for g in grads)
        bufs = []
        for p, g in zip(params, grads):
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(mu).add_(g)
            bufs.append(state["momentum_buffer"])
        return Vector(b.clone() for b in bufs)


class ModularAdam(_ModularOptimizer):
    """Adam's direction ``m_hat / (sqrt(v_hat) + eps)`` normalised in the modular norm.

    (The first-moment bias correction is a common factor of every tensor, so normalisation removes
    it; it is kept so that the direction is exactly Adam's.)

    ``params``: the module's weight tensors in order; ``lr``: modular norm of every update;
    ``weight_decay``: decoupled, the weights shrink by ``lr * weight_decay`` per step (split by mass).
    """

    def __init__(
        self,
        params: Sequence[Tensor] | Vector,
        module: Module,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        dualize: bool = False,
    ) -> None:
        lr = _real(lr, "lr", 0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        betas = (_real(betas[0], "betas[0]", 0.0, 1.0, high_open=True), _real(betas[1], "betas[1]", 0.0, 1.0, high_open=True))
        eps = _real(eps, "eps", 0.0, low_open=True)
        weight_decay = _real(weight_decay, "weight_decay", 0.0)
        super().__init__(params, module, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, dualize=dualize))

    def _direction(self, group, params, grads):
        beta1, beta2 = group["betas"]
        if not params:
            return Vector()
        exp_avgs, exp_avg_sqs = [], []
        for p in params:
            state = self.state[p]
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
        step = self.state[params[0]]["step"]
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        bias1 = 1 - beta1**step
        bias2 = 1 - beta2**step
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, math.sqrt(bias2))
        torch._foreach_add_(denom, group["eps"])
        direction = torch._foreach_div(exp_avgs, denom)
        torch._foreach_div_(direction, bias1)
        return Vector(direction)


# names under which training configurations refer to the optimisers
OPTIMIZERS: dict[str, type[_ModularOptimizer]] = {"modular_sgd": ModularSGD, "modular_adam": ModularAdam}
