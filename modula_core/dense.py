"""Dense: a linear atom in ``torch.nn.Linear``'s convention (no scale factor in the forward pass).

``y = x @ W^T (+ b)`` with W of shape (out, in), so parameters of an ordinary ``nn.Linear`` can be
normalised in the modular norm as they are. The RMS->RMS factor sqrt(out/in) that Modula's
``Linear`` puts in the forward pass is folded into the norm instead:
``||W|| = sqrt(in/out) * sigma_max(W)``; a bias is measured in RMS norm, ``||b|| = ||b||_2 / sqrt(out)``.
With a bias, weight and bias are two atoms of equal mass summed (each gets half the target), the
rule ``ElmanRNN`` uses for its biases.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .abstract import Atom
from .checks import check_int, check_real, check_target
from .linalg import DEFAULT_NS, newton_schulz, orthogonal, spectral_normalize_
from .vector import Vector


class Dense(Atom):
    """x (..., in) -> x @ W^T (+ b) (..., out); weights ``[W (out, in)]`` or ``[W, b (out)]``. Mass 1, sensitivity 1."""

    def __init__(self, out_features: int, in_features: int, bias: bool = False, mass: float = 1.0, power_steps: int = 2) -> None:
        for name, value in (("out_features", out_features), ("in_features", in_features), ("power_steps", power_steps)):
            check_int(value, f"Dense: {name}")
        super().__init__(check_real(mass, "Dense: mass"), 1.0)
        self.out_features: int = out_features  # output dimension
        self.in_features: int = in_features  # input dimension
        self.bias: bool = bool(bias)  # whether a bias vector follows the matrix
        self.length = 2 if bias else 1
        self.power_steps: int = power_steps  # warm-started power-iteration steps per normalize
        self.weight_scale: float = math.sqrt(out_features / in_features)  # spectral norm of a unit-norm W

    def _shares(self) -> tuple[float, ...]:
        return (0.5, 0.5) if self.bias else (1.0,)

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        return F.linear(x, w[0], w[1] if self.bias else None)

    def initialize(self, device=None, dtype=None, generator=None) -> Vector:
        weight = orthogonal((self.out_features, self.in_features), generator=generator) * self.weight_scale
        tensors = [weight.to(device=device, dtype=dtype or torch.get_default_dtype())]
        if self.bias:
            tensors.append(torch.zeros(self.out_features, device=device, dtype=dtype or torch.get_default_dtype()))
        return Vector(t.requires_grad_(True) for t in tensors)

    @torch.no_grad()
    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        target_norm = check_target(target_norm)
        if self.mass == 0:  # frozen, as every atom of mass 0
            for t in w:
                t.zero_()
            return
        shares = self._shares()
        spectral_normalize_(w[0], self.buffers, self.power_steps, shares[0] * target_norm * self.weight_scale)
        if self.bias:
            rms = w[1].norm() / math.sqrt(self.out_features)
            w[1].mul_(shares[1] * target_norm / rms if rms > 0 else 0.0)

    @torch.no_grad()
    def dualize(self, g: Vector, target_norm: float = 1.0, schedule: str = DEFAULT_NS) -> Vector:
        target_norm = check_target(target_norm)
        if self.mass == 0:  # frozen, as every atom of mass 0
            return g.zeros_like()
        shares = self._shares()
        out = [shares[0] * target_norm * self.weight_scale * newton_schulz(g[0], schedule=schedule)]
        if self.bias:
            rms = g[1].norm() / math.sqrt(self.out_features)
            out.append(g[1] * (shares[1] * target_norm / rms) if rms > 0 else torch.zeros_like(g[1]))
        return Vector(out)

    @torch.no_grad()
    def norm(self, w: Vector) -> float:
        shares = self._shares()
        parts = [float(torch.linalg.matrix_norm(w[0].double(), ord=2)) / self.weight_scale / shares[0]]
        if self.bias:
            parts.append(float(w[1].double().norm()) / math.sqrt(self.out_features) / shares[1])
        return max(parts)

    def __repr__(self) -> str:
        return f"Dense({self.out_features}, {self.in_features}, bias={self.bias}, mass={self.mass:g})"
