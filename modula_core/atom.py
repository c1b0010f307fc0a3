"""Atoms: modules with weights and hand-declared mass and sensitivity (Linear, Embed, Conv2D).

Every atom's norm is an operator norm between RMS-normed spaces, so that ``normalize``/``dualize``
set an update's size in units that do not change with width:

- ``Linear``: spectral norm of W, with the factor sqrt(out/in) in the forward pass;
- ``Embed``: largest row RMS (each token's vector);
- ``Conv2D``: largest spectral norm over the kernel's spatial taps.

An atom of mass 0 is frozen: its normalized and dualized updates are zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .abstract import Atom
from .checks import check_int, check_real, check_target
from .linalg import DEFAULT_NS, NS_COEFFICIENTS, newton_schulz, orthogonal, spectral_normalize_
from .vector import Vector


def _schedule(value: object, owner: str) -> str:
    if value not in NS_COEFFICIENTS:
        raise ValueError(f"{owner}: unknown Newton–Schulz schedule {value!r}; choose one of {sorted(NS_COEFFICIENTS)}")
    return str(value)


def _check_vector(w: Vector, length: int, owner: str) -> None:
    if not isinstance(w, Vector):
        raise TypeError(f"{owner} needs a modula_core Vector, got {type(w).__name__}")
    if len(w) != length:
        raise ValueError(f"{owner} needs a Vector of {length} tensor(s), got {len(w)}")


def _sample_device(generator: torch.Generator | None, device) -> torch.device | str | None:
    # A generator draws on its own device; sample there, then move.
    return generator.device if generator is not None else device


class _SpectralAtom(Atom):
    """Shared rules of atoms made of (a stack of) matrices measured in spectral norm (Linear, Conv2D taps).

    Subclasses set ``power_steps`` and ``schedule``; the weight is ``(..., out, in)``.
    """

    power_steps: int  # power-iteration steps per normalize
    schedule: str  # Newton–Schulz schedule used by dualize

    @torch.no_grad()
    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        target_norm = check_target(target_norm)
        _check_vector(w, 1, f"{type(self).__name__}.normalize")
        if self.mass == 0 or target_norm == 0:
            w[0].zero_()
            return
        spectral_normalize_(w[0], self.buffers, self.power_steps, target_norm)

    @torch.no_grad()
    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        target_norm = check_target(target_norm)
        _check_vector(g, 1, f"{type(self).__name__}.dualize")
        if self.mass == 0:
            return g.zeros_like()
        return Vector([target_norm * newton_schulz(g[0], schedule=self.schedule)])

    @torch.no_grad()
    def norm(self, w: Vector) -> float:
        """The spectral norm (the largest over the stack of matrices)."""
        _check_vector(w, 1, f"{type(self).__name__}.norm")
        return float(torch.linalg.matrix_norm(w[0].double(), ord=2).max())


class Linear(_SpectralAtom):
    """``y = sqrt(out/in) * x @ W^T`` with W of shape (out, in); x (..., in) -> y (..., out).

    Modula's convention: W is semi-orthogonal at init and the factor sqrt(out/in) sits in the forward
    pass, so the RMS->RMS operator norm of the layer is the spectral norm of W. Mass 1, sensitivity 1.
    ``normalize`` uses warm-started power iteration (``power_steps`` per call, ten on a cold start,
    state in ``buffers["u"]``), so the update's spectral norm is ``target_norm`` up to the estimate's
    error (it never undershoots). ``dualize`` returns ``target_norm * newton_schulz(G)`` (the factor
    sqrt(out/in) is already in the forward pass); its singular values are ``target_norm`` times the
    ranges measured in ``linalg.NS_COEFFICIENTS``.
    """

    def __init__(
        self, out_features: int, in_features: int, mass: float = 1.0, power_steps: int = 1, schedule: str = DEFAULT_NS
    ) -> None:
        out_features = check_int(out_features, "Linear: out_features")
        in_features = check_int(in_features, "Linear: in_features")
        super().__init__(check_real(mass, "Linear: mass"), 1.0)
        self.length = 1
        self.out_features: int = out_features  # output dimension
        self.in_features: int = in_features  # input dimension
        self.scale: float = math.sqrt(out_features / in_features)  # forward factor sqrt(out/in)
        self.power_steps: int = check_int(power_steps, "Linear: power_steps")  # power-iteration steps per normalize
        self.schedule: str = _schedule(schedule, "Linear")  # Newton–Schulz schedule used by dualize

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.out_features}, {self.in_features}) got an input with last dimension {x.shape[-1]}")
        return self.scale * F.linear(x, w[0])

    def initialize(self, device=None, dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Vector:
        weight = orthogonal((self.out_features, self.in_features), generator=generator, device=_sample_device(generator, device))
        weight = weight.to(device=device, dtype=dtype or torch.get_default_dtype())
        return Vector([weight.requires_grad_(True)])


    def __repr__(self) -> str:
        return f"Linear({self.out_features}, {self.in_features}, mass={self.mass:g})"


class Embed(Atom):
    """Token embedding ``Embed(d, vocab)`` (Modula's order, output dimension first).

    Weight E of shape (vocab, d), one row per token, each of RMS 1 at init (norm sqrt(d)).
    Forward: integer ids (...) -> E[ids] (..., d). Norm: the largest row RMS. ``normalize`` and
    ``dualize`` set every nonzero row of the update to RMS ``target_norm`` (norm sqrt(d) * target);
    rows of tokens absent from the batch are zero and stay zero. Mass 1, sensitivity 1.
    """

    def __init__(self, d_embed: int, vocab_size: int, mass: float = 1.0) -> None:
        d_embed = check_int(d_embed, "Embed: d_embed")
        vocab_size = check_int(vocab_size, "Embed: vocab_size")
        super().__init__(check_real(mass, "Embed: mass"), 1.0)
        self.length = 1
        self.d_embed: int = d_embed  # embedding (output) dimension d
        self.vocab_size: int = vocab_size  # number of tokens (rows of E)

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        if x.is_floating_point() or x.is_complex():
            raise TypeError(f"Embed takes integer token ids, got a {x.dtype} tensor")
        return F.embedding(x, w[0])

    def initialize(self, device=None, dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Vector:
        e = torch.randn(self.vocab_size, self.d_embed, generator=generator, device=_sample_device(generator, device), dtype=torch.float64)
        e = F.normalize(e, dim=1) * math.sqrt(self.d_embed)
        return Vector([e.to(device=device, dtype=dtype or torch.get_default_dtype()).requires_grad_(True)])

    def _rows_to_target(self, e: Tensor, target_norm: float) -> Tensor:
        row_norm = torch.linalg.vector_norm(e, dim=1, keepdim=True)
        scale = torch.where(row_norm > 0, target_norm * math.sqrt(self.d_embed) / torch.where(row_norm > 0, row_norm, 1.0), 0.0)
        return scale

    @torch.no_grad()
    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        target_norm = check_target(target_norm)
        _check_vector(w, 1, "Embed.normalize")
        if self.mass == 0:
            w[0].zero_()
            return
        w[0].mul_(self._rows_to_target(w[0], target_norm))

    @torch.no_grad()
    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        target_norm = check_target(target_norm)
        _check_vector(g, 1, "Embed.dualize")
        if self.mass == 0:
            return g.zeros_like()
        return Vector([g[0] * self._rows_to_target(g[0], target_norm)])

    @torch.no_grad()
    def norm(self, w: Vector) -> float:
        _check_vector(w, 1, "Embed.norm")
        return float(torch.linalg.vector_norm(w[0].double(), dim=1).max() / math.sqrt(self.d_embed))

    def __repr__(self) -> str:
        return f"Embed({self.d_embed}, {self.vocab_size}, mass={self.mass:g})"


class Conv2D(_SpectralAtom):
    """2-D convolution ``Conv2D(out, in, kernel_size)``: (N, in, H, W) -> (N, out, H', W').

    Weight of shape (k, k, out, in): one (out, in) matrix per spatial tap. The forward pass is
    ``sqrt(out/in) / k^2 * conv2d(x, W)``, so the layer's RMS->RMS norm is at most the largest
    per-tap spectral norm, which is this atom's norm. ``normalize`` is per-tap spectral normalisation
    (batched power iteration), ``dualize`` per-tap Newton–Schulz. Mass 1, sensitivity 1.
    ``padding=None`` pads by k // 2 ("same" size for odd k and stride 1).
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        mass: float = 1.0,
        power_steps: int = 1,
        schedule: str = DEFAULT_NS,
    ) -> None:
        out_channels = check_int(out_channels, "Conv2D: out_channels")
        in_channels = check_int(in_channels, "Conv2D: in_channels")
        kernel_size = check_int(kernel_size, "Conv2D: kernel_size")
        super().__init__(check_real(mass, "Conv2D: mass"), 1.0)
        self.length = 1
        self.out_channels: int = out_channels  # output channels
        self.in_channels: int = in_channels  # input channels
        self.kernel_size: int = kernel_size  # k (square kernels)
        self.stride: int = check_int(stride, "Conv2D: stride")  # convolution stride
        self.padding: int = kernel_size // 2 if padding is None else check_int(padding, "Conv2D: padding", low=0)  # zero padding
        self.scale: float = math.sqrt(out_channels / in_channels) / kernel_size**2  # forward factor
        self.power_steps: int = check_int(power_steps, "Conv2D: power_steps")  # power-iteration steps per normalize
        self.schedule: str = _schedule(schedule, "Conv2D")  # Newton–Schulz schedule used by dualize

    def forward(self, x: Tensor, w: Vector) -> Tensor:
        if x.dim() not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"Conv2D expects (N, {self.in_channels}, H, W) inputs, got shape {tuple(x.shape)}")
        kernel = w[0].permute(2, 3, 0, 1)  # (out, in, k, k), torch's layout
        return self.scale * F.conv2d(x, kernel, stride=self.stride, padding=self.padding)

    def initialize(self, device=None, dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Vector:
        k = self.kernel_size
        weight = orthogonal((k, k, self.out_channels, self.in_channels), generator=generator, device=_sample_device(generator, device))
        return Vector([weight.to(device=device, dtype=dtype or torch.get_default_dtype()).requires_grad_(True)])


    def __repr__(self) -> str:
        return f"Conv2D({self.out_channels}, {self.in_channels}, kernel_size={self.kernel_size}, mass={self.mass:g})"


__all__ = ["Conv2D", "Embed", "Linear"]
