"""Inverted difference of Gaussians: the main inhibitor of moduli regularisation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import Inhibitor, check_positive, check_real, exp_floored

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
        self.amplitude: float = check_positive(amplitude, "DoG amplitude")  # height scale of the DoG term
        self.sigma_wide: float = check_positive(sigma_wide, "DoG sigma_wide")  # wide Gaussian scale (d^2 units)
        self.sigma_narrow: float = check_positive(sigma_narrow, "DoG sigma_narrow")  # narrow scale (d^2 units)
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

    def _from_squared(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The unclamped f and the two Gaussians at squared distance ``s``."""
        wide = exp_floored(-s / self.sigma_wide)
        narrow = exp_floored(-s / self.sigma_narrow)
        return self.offset - self.amplitude * (wide - narrow), wide, narrow

    def _apply(self, d: Tensor) -> Tensor:
        out = self._from_squared(d * d)[0]
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
