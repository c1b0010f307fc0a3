"""Inverted difference of Gaussians: the main inhibitor of moduli regularisation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..checks import check_real
from .base import Inhibitor, exp_floored

__all__ = ["DoG"]


class DoG(Inhibitor):
    """``f(d) = offset - amplitude * (exp(-d^2 / sigma_wide) - exp(-d^2 / sigma_narrow))``.

    ``sigma_wide`` and ``sigma_narrow`` divide ``d^2`` directly (variance-like scales in
    squared distance units). With ``offset="peak"`` the offset is the maximum of the DoG term,
    so ``f >= 0`` (float rounding below 0 is clamped), ``f(peak_distance) = 0`` and
    ``f -> peak_value`` at long range (defaults: peak at d ~= 0.888, value ~= 81.1). A number
    is used literally; the form ``c - c(...)`` is ``DoG(amplitude=c, offset=c)``.
    """

    name = "dog"

    def __init__(
        self,
        amplitude: float = 100.0,
        sigma_wide: float = 5.0,
        sigma_narrow: float = 0.25,
        offset: float | str = "peak",
    ) -> None:
        self.amplitude: float = check_real(amplitude, "DoG amplitude", positive=True)  # height scale of the DoG term
        self.sigma_wide: float = check_real(sigma_wide, "DoG sigma_wide", positive=True)  # wide Gaussian scale (d^2 units)
        self.sigma_narrow: float = check_real(sigma_narrow, "DoG sigma_narrow", positive=True)  # narrow scale (d^2 units)
        if not self.sigma_wide > self.sigma_narrow:
            raise ValueError(
                f"DoG needs sigma_wide > sigma_narrow > 0, got sigma_wide={self.sigma_wide}, "
                f"sigma_narrow={self.sigma_narrow}; swap them"
            )
        if isinstance(offset, str):
            if offset != "peak":
                raise ValueError(f"DoG offset must be 'peak' or a real number, got {offset!r}")
            self.offset_spec: float | str = "peak"  # as given: "peak" or a number
        else:
            self.offset_spec = check_real(offset, "DoG offset")
        # offset actually subtracted from, in coefficient units
        self.offset: float = self.peak_value if self.offset_spec == "peak" else float(self.offset_spec)

    @property
    def peak_distance(self) -> float:
        """Distance where the DoG term is largest: ``sqrt(ln(sw/sn) / (1/sn - 1/sw))``."""
        sw, sn = self.sigma_wide, self.sigma_narrow
        return math.sqrt(math.log(sw / sn) / (1.0 / sn - 1.0 / sw))

    @property
    def peak_value(self) -> float:
        """Maximum of ``amplitude * (exp(-d^2/sw) - exp(-d^2/sn))`` over d >= 0."""
        u = self.peak_distance**2
        return self.amplitude * (math.exp(-u / self.sigma_wide) - math.exp(-u / self.sigma_narrow))

    def plain(self, d: Tensor) -> Tensor:
        """The non-inverted DoG ``amplitude * (exp(-d^2 / sigma_wide) - exp(-d^2 / sigma_narrow))``:
        0 at d = 0, ``peak_value`` at ``peak_distance``, -> 0 at long range; same shape as ``d``."""
        if not isinstance(d, Tensor) or not d.is_floating_point():
            raise TypeError(f"DoG.plain expects a floating torch.Tensor of distances, got {getattr(d, 'dtype', type(d).__name__)}")
        d2 = d * d
        return self.amplitude * (torch.exp(-d2 / self.sigma_wide) - torch.exp(-d2 / self.sigma_narrow))

    def plain_torus_mean(self, num_neurons: int, period: float = 10.0) -> float:
        """Expected mean of :meth:`plain` over the N x N distance matrix of ``num_neurons``
        uniform random points on the flat 2-torus of side ``period`` (diagonal included, where
        ``plain`` is 0): ``(N - 1) / N * amplitude * (g(sigma_wide) - g(sigma_narrow)) / period^2``
        with ``g(s) = (sqrt(pi s) erf(period / (2 sqrt(s))))^2``, the integral of ``exp(-d^2 / s)``
        over the torus. Defaults: 14.873 (N - 1) / N."""
        if isinstance(num_neurons, bool) or not isinstance(num_neurons, int) or num_neurons < 1:
            raise ValueError(f"num_neurons must be a positive int, got {num_neurons!r}")
        period = check_real(period, "torus period", positive=True)

        def integral(s: float) -> float:
            return (math.sqrt(math.pi * s) * math.erf(period / (2.0 * math.sqrt(s)))) ** 2

        pair = self.amplitude * (integral(self.sigma_wide) - integral(self.sigma_narrow)) / period**2
        return pair * (num_neurons - 1) / num_neurons

    def _from_squared(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The unclamped f and the two Gaussians at squared distance ``s`` (floored exponentials:
        :meth:`_apply`'s values to 2e-33, without the CPU's slow path for long distances)."""
        wide = exp_floored(-s / self.sigma_wide)
        narrow = exp_floored(-s / self.sigma_narrow)
        return self.offset - self.amplitude * (wide - narrow), wide, narrow

    def _apply(self, d: Tensor) -> Tensor:
        out = self.offset - self.plain(d)
        if self.offset_spec == "peak":
            # exact maths gives f >= 0; clamp only removes float rounding (~1e-5 in float32)
            out = out.clamp_min(0.0)
        return out

    def at_squared_distance(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """``f`` and ``df/ds = amplitude (wide / sigma_wide - narrow / sigma_narrow)`` at ``s = d^2``,
        0 where the peak offset's clamp is active (as autograd through ``clamp_min``)."""
        out, wide, narrow = self._from_squared(s)
        slope = self.amplitude * (wide / self.sigma_wide - narrow / self.sigma_narrow)
        if self.offset_spec == "peak":
            slope = slope * (out >= 0.0)
            out = out.clamp_min(0.0)
        return out, slope

    def to_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "amplitude": self.amplitude,
            "sigma_wide": self.sigma_wide,
            "sigma_narrow": self.sigma_narrow,
            "offset": self.offset_spec,
        }
