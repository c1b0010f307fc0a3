r"""ElmanRNN: a weight-tied Elman recurrence as one atom of the modular norm.

The cell is ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, exactly ``torch.nn.RNN``'s
equation (one layer, unidirectional, ``batch_first=False``). The weights are stored once and reused
at every step, in ``nn.RNN``'s flat order ``[W_ih (H, I), W_hh (H, H)]`` (+ ``[b_ih (H), b_hh (H)]``).

Scale. Norms are RMS norms: ``||v|| = ||v||_2 / sqrt(dim)``, so a matrix ``A`` (out, in) has
RMS->RMS operator norm ``sqrt(in/out) * sigma_max(A)``. The forward pass carries no
``sqrt(out/in)`` factor (it must equal ``nn.RNN``); the factor is folded into the weights instead:
``W_ih`` is initialised orthogonal times ``sqrt(H/I)`` and its norm is ``sqrt(I/H) * sigma_max``.
``W_hh`` is square, so its RMS->RMS norm is ``sigma_max``.

Derivation of the tied modular norm. One step is ``phi @ Add @ (W_ih, W_hh[, bias])``: a tuple of
linear atoms of equal mass summed, then a nonlinearity of sensitivity 1 (tanh is 1-Lipschitz; ReLU
is 1-Lipschitz as a map, we do not use Modula's 1/sqrt(2) average-case factor). The tuple rule
gives part ``p`` the share ``c_p`` of the cell's target:

* without bias: ``c = (1/2, 1/2)`` for ``(W_ih, W_hh)``;
* with bias: the biases only ever act through ``b_ih + b_hh``, i.e. as one linear atom applied to
  the constant input 1 whose norm is the RMS norm of the bias; it gets the same mass as a matrix,
  so ``c = (1/3, 1/3)`` for the matrices and ``1/6`` for each of ``b_ih``, ``b_hh`` (the two share
  that atom's budget equally, and ``rms(db_ih + db_hh) <= rms(db_ih) + rms(db_hh)``).

With RMS-bounded signals (``||x_t|| <= 1``, ``||h_t|| <= 1``) a perturbation ``dw`` moves the
pre-activation of every step by at most ``sum_p ||dw_p||``. The perturbation made at step ``t``
reaches ``h_T`` through the remaining ``T - t`` steps, each of hidden-to-hidden sensitivity ``s``
(``recurrent_sensitivity``: ``||phi'|| * ||W_hh|| <= 1``). Because the weights are tied, the SAME
``dw`` acts at every step, so to first order::

    ||d h_T|| <= sum_{t=1}^{T} s^(T-t) * sum_p ||dw_p|| = S_T(s) * sum_p ||dw_p||,
    S_T(s) = sum_{k=0}^{T-1} s^k   (= T for s = 1).

Giving part ``p`` the tied target ``c_p * target / S_T(s)`` therefore bounds ``||d h_T||`` (and
``||d h_t||`` for every ``t <= T``, since ``S_t <= S_T``) by ``target``. The matching norm is
``||w|| = max_p S_T(s) * ||w_p|| / c_p``; ``normalize(u, t)`` gives every part its tied target, so
``norm(normalize(u, t)) == t``. This is the untied per-step budget folded together: unrolling into
T untied copies of mass ``m/T`` each, the composition rule hands copy ``t`` the budget
``(target/T) / s^(T-t)`` and its effect on ``h_T`` is ``target/T``; a single tied update whose effect
equals the sum of these effects has norm ``target / S_T(s)``, the ``s^(T-t)``-weighted mean of the
per-step budgets (``target / T`` for ``s = 1``).

Sensitivity. The atom declares input sensitivity 1: at initialisation ``x_t`` enters every step
through ``W_ih`` of RMS->RMS norm 1 and the states stay of RMS order 1, like a ``Linear`` atom.
The worst case ``S_T(s)`` accumulation over time is charged to the RNN's own weights (above), not
to the modules upstream, whose budgets would otherwise shrink by a factor ``T``.

Sequence length. ``T`` is ``steps`` when given, else the length of the last sequence passed to
``forward`` with gradients enabled (evaluation passes under ``torch.no_grad`` do not change it).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor

from .abstract import Atom
from .checks import check_int, check_target
from .linalg import newton_schulz, orthogonal, spectral_norm_estimate, DEFAULT_NS, NS_COEFFICIENTS
from .vector import Vector

NONLINEARITIES = ("relu", "tanh", "identity")
# cuDNN warns on every call that separate weight tensors are "not part of single contiguous chunk
# of memory"; a weight Vector holds separate leaves by design, so the copy it announces is expected.
_CUDNN_CHUNK_WARNING = "RNN module weights are not part of single contiguous chunk of memory"


def unrolled_gain(steps: int, s: float) -> float:
    """``S_T(s) = sum_{k=0}^{T-1} s^k``: first-order gain of a tied perturbation on ``h_T``.

    ``steps`` is ``T >= 1``; ``s > 0`` is the per-step hidden-to-hidden sensitivity.
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(s, numbers.Real) or not (s > 0 and math.isfinite(s)):
        raise ValueError(f"the per-step sensitivity s must be a finite real number > 0, got {s!r}")
    s = float(s)
    if s == 1.0:
        return float(steps)
    return (1.0 - s ** int(steps)) / (1.0 - s)


def _recurrent_start(shape: torch.Size, like: Tensor) -> Tensor:
    # the tied atom's own fixed start (seed 0, on the weights' device): earlier runs' estimates
    # start here, so modular-optimiser results stay as they were
    gen = torch.Generator(device=like.device).manual_seed(0)
    return torch.randn(shape, generator=gen, device=like.device, dtype=like.dtype)


class ElmanRNN(Atom):
    """Weight-tied Elman RNN ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Input: a ``(T, B, input)`` tensor (initial state zero) or a pair ``(x, h0)`` with ``h0 (B, hidden)``.
    Output: every hidden state, ``(T, B, hidden)``; the last one is ``out[-1]``.
    """

    def __init__(
        self,
        hidden: int,
        input: int,
        nonlinearity: str = "relu",
        bias: bool = False,
        steps: int | None = None,
        recurrent_sensitivity: float = 1.0,
        mass: float = 1.0,
        fused: bool = True,
        power_steps: int = 2,
    ) -> None:
        hidden = check_int(hidden, "hidden")
        input = check_int(input, "input")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        if steps is not None:
            steps = check_int(steps, "steps")
        if not isinstance(recurrent_sensitivity, numbers.Real) or not (
            recurrent_sensitivity > 0 and math.isfinite(recurrent_sensitivity)
        ):
            raise ValueError(f"recurrent_sensitivity must be a finite real number > 0, got {recurrent_sensitivity!r}")
        if not isinstance(mass, numbers.Real) or not (mass >= 0 and math.isfinite(mass)):
            raise ValueError(f"mass must be a finite real number >= 0, got {mass!r}")
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool, got {type(fused).__name__}")
        power_steps = check_int(power_steps, "power_steps")
        super().__init__(mass=mass, sensitivity=1.0)
        self.hidden: int = hidden  # H, number of hidden units
        self.input: int = input  # I, input features per step
        self.nonlinearity: str = nonlinearity  # "relu", "tanh" or "identity" (linear RNN, loop path only)
        self.bias: bool = bias  # whether b_ih and b_hh exist
        self.steps: int | None = steps  # T used by the norm; None: the last sequence length seen
        self.recurrent_sensitivity: float = float(recurrent_sensitivity)  # s, per-step hidden sensitivity
        self.fused: bool = fused  # use torch's fused RNN kernel (cuDNN / oneDNN) when it can run
        self.power_steps: int = power_steps  # warm-started power-iteration steps per normalize call
        self.seen_steps: int | None = None  # length of the last sequence seen by forward
        self.length = 4 if bias else 2

    # ----------------------------------------------------------------- shapes and shares
    def shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the weight tensors, in ``nn.RNN``'s flat order."""
        h, i = self.hidden, self.input
        return [(h, i), (h, h)] + ([(h,), (h,)] if self.bias else [])

    def shares(self) -> list[float]:
        """Share ``c_p`` of the atom's target given to each weight tensor (they sum to 1)."""
        return [1 / 3, 1 / 3, 1 / 6, 1 / 6] if self.bias else [1 / 2, 1 / 2]

    def time_steps(self) -> int:
        """The ``T`` the norm is computed for: ``steps``, else the last sequence length seen."""
        if self.steps is not None:
            return self.steps
        if self.seen_steps is None:
            raise ValueError(
                "ElmanRNN does not know the sequence length T its norm depends on: pass steps=T to "
                "the constructor, or run forward on a sequence before normalize/dualize/norm"
            )
        return self.seen_steps

    def gain(self) -> float:
        """``S_T(s)`` for the current ``T`` and ``s = recurrent_sensitivity``."""
        return unrolled_gain(self.time_steps(), self.recurrent_sensitivity)

    def part_targets(self, target_norm: float) -> list[float]:
        """Tied target of each weight tensor's own norm: ``c_p * target_norm / S_T(s)``."""
        target_norm = check_target(target_norm)
        g = self.gain()
        return [c * target_norm / g for c in self.shares()]

    def _scales(self) -> list[float]:
        # factor turning sigma_max (matrices) or the 2-norm (biases) into the part's RMS norm
        h, i = self.hidden, self.input
        return [math.sqrt(i / h), 1.0] + ([1 / math.sqrt(h)] * 2 if self.bias else [])

    def _check_weights(self, w: Vector) -> None:
        if not isinstance(w, Vector):
            raise TypeError(f"weights must be a modula_core Vector, got {type(w).__name__}")
        expected = self.shapes()
        if len(w) != len(expected):
            raise ValueError(f"ElmanRNN(bias={self.bias}) needs {len(expected)} weight tensors, got {len(w)}")
        for k, (t, shape) in enumerate(zip(w, expected)):
            if tuple(t.shape) != shape:
                raise ValueError(
                    f"weight tensor {k} has shape {tuple(t.shape)}, expected {shape} "
                    f"(order: W_ih (H, I), W_hh (H, H){', b_ih (H), b_hh (H)' if self.bias else ''})"
                )

    # ----------------------------------------------------------------- forward
    def _split_input(self, x: Any) -> tuple[Tensor, Tensor | None]:
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"ElmanRNN input must be x or a pair (x, h0), got a sequence of length {len(x)}")
            x, h0 = x
        else:
            h0 = None
        if not isinstance(x, Tensor):
            raise TypeError(f"ElmanRNN input x must be a tensor of shape (T, B, {self.input}), got {type(x).__name__}")
        if x.dim() != 3 or x.shape[-1] != self.input:
            raise ValueError(
                f"ElmanRNN input x must have shape (T, B, {self.input}) (time first), got {tuple(x.shape)}"
            )
        if x.shape[0] < 1:
            raise ValueError("ElmanRNN input x must have at least one time step (T >= 1)")
        if not x.is_floating_point():
            raise TypeError(f"ElmanRNN input x must be a floating-point tensor, got {x.dtype}")
        if h0 is not None:
            if not isinstance(h0, Tensor):
                raise TypeError(f"initial state h0 must be a tensor of shape (B, {self.hidden}), got {type(h0).__name__}")
            if tuple(h0.shape) != (x.shape[1], self.hidden):
                raise ValueError(
                    f"initial state h0 must have shape (B, H) = ({x.shape[1]}, {self.hidden}), got {tuple(h0.shape)}"
                )
            if h0.dtype != x.dtype or h0.device != x.device:
                raise TypeError(
                    f"initial state h0 ({h0.dtype}, {h0.device}) must match x ({x.dtype}, {x.device}); move or cast it"
                )
        return x, h0

    def forward(self, x: Tensor | Sequence[Tensor], w: Vector, fused: bool | None = None) -> Tensor:
        """All hidden states ``(T, B, H)`` for ``x (T, B, I)`` or ``(x, h0 (B, H))``.

        ``fused`` overrides the ``fused`` attribute for this call; the identity nonlinearity always
        runs the Python loop.
        """
        x, h0 = self._split_input(x)
        self._check_weights(w)
        if w.dtype != x.dtype:
            raise TypeError(f"input dtype {x.dtype} differs from weight dtype {w.dtype}; cast one of them")
        if torch.is_grad_enabled() or self.seen_steps is None:
            self.seen_steps = int(x.shape[0])
        use_fused = self.fused if fused is None else fused
        if use_fused and self.nonlinearity != "identity":
            return self._forward_fused(x, h0, w)
        return self._forward_loop(x, h0, w)

    def _forward_fused(self, x: Tensor, h0: Tensor | None, w: Vector) -> Tensor:
        if h0 is None:
            hx = torch.zeros(1, x.shape[1], self.hidden, device=x.device, dtype=x.dtype)
        else:
            hx = h0.unsqueeze(0)
        kernel = torch._VF.rnn_relu if self.nonlinearity == "relu" else torch._VF.rnn_tanh
        # Argument order as in torch.nn.RNN.forward: input, hx, flat weights, has_biases,
        # num_layers, dropout, train, bidirectional, batch_first.
        args = (x, hx, list(w), self.bias, 1, 0.0, torch.is_grad_enabled(), False, False)
        if x.is_cuda:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_CUDNN_CHUNK_WARNING)
                out, _ = kernel(*args)
        else:
            out, _ = kernel(*args)
        return out

    def _forward_loop(self, x: Tensor, h0: Tensor | None, w: Vector) -> Tensor:
        w_ih, w_hh = w[0], w[1]
        # input projections of all steps in one matmul: (T, B, H)
        pre = x @ w_ih.mT
        if self.bias:
            pre = pre + (w[2] + w[3])
        h = torch.zeros(x.shape[1], self.hidden, device=x.device, dtype=x.dtype) if h0 is None else h0
        phi = {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda z: z}[self.nonlinearity]
        states = []
        for t in range(x.shape[0]):
            h = phi(torch.addmm(pre[t], h, w_hh.mT))
            states.append(h)
        return torch.stack(states)

    # ----------------------------------------------------------------- weights
    def initialize(self, device=None, dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Vector:
        """``W_ih`` orthogonal times ``sqrt(H/I)`` (RMS->RMS norm 1), ``W_hh`` orthogonal, biases 0."""
        h, i = self.hidden, self.input
        dtype = dtype or torch.get_default_dtype()
        w_ih = orthogonal((h, i), generator=generator, device=device, dtype=dtype) * math.sqrt(h / i)
        w_hh = orthogonal((h, h), generator=generator, device=device, dtype=dtype)
        tensors = [w_ih, w_hh]
        if self.bias:
            tensors += [torch.zeros(h, device=w_ih.device, dtype=dtype) for _ in range(2)]
        return Vector(t.contiguous().requires_grad_(True) for t in tensors)

    def part_norms(self, w: Vector) -> list[float]:
        """Exact RMS norm of each tensor: ``sqrt(I/H) sigma_max(W_ih)``, ``sigma_max(W_hh)``, ``rms(b)``."""
        self._check_weights(w)
        with torch.no_grad():
            out = []
            for k, (t, scale) in enumerate(zip(w, self._scales())):
                raw = torch.linalg.matrix_norm(t, ord=2) if k < 2 else torch.linalg.vector_norm(t)
                out.append(float(raw) * scale)
        return out

    def norm(self, w: Vector) -> float:
        """Modular norm ``max_p S_T(s) * ||w_p|| / c_p`` (exact spectral norms, via SVD)."""
        g = self.gain()
        return max(g * n / c for n, c in zip(self.part_norms(w), self.shares()))

    def _sigma(self, t: Tensor, key: str) -> Tensor:
        return spectral_norm_estimate(t, self.buffers, self.power_steps, key, start=_recurrent_start)

    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        """In place: every tensor of the update ``w`` gets its tied target (spectral normalisation)."""
        targets = self.part_targets(target_norm)
        self._check_weights(w)
        with torch.no_grad():
            for k, (t, target, scale) in enumerate(zip(w, targets, self._scales())):
                if k < 2:
                    raw = self._sigma(t, "u_ih" if k == 0 else "u_hh")
                else:
                    raw = torch.linalg.vector_norm(t)
                current = raw * scale
                # a zero update stays zero instead of becoming NaN
                t.mul_(torch.where(current > 0, target / current.clamp_min(torch.finfo(t.dtype).tiny), 0.0))

    def dualize(self, g: Vector, target_norm: float = 1.0, schedule: str = DEFAULT_NS) -> Vector:
        """The update of norm ``target_norm`` best aligned with ``g``: orthogonalised matrices, unit-RMS biases."""
        if schedule not in NS_COEFFICIENTS:
            raise ValueError(f"unknown Newton–Schulz schedule {schedule!r}; choose one of {sorted(NS_COEFFICIENTS)}")
        targets = self.part_targets(target_norm)
        self._check_weights(g)
        out = []
        with torch.no_grad():
            for k, (t, target, scale) in enumerate(zip(g, targets, self._scales())):
                if k < 2:
                    out.append(newton_schulz(t, schedule) * (target / scale))
                else:
                    n = torch.linalg.vector_norm(t)
                    out.append(t * torch.where(n > 0, target / scale / n.clamp_min(torch.finfo(t.dtype).tiny), 0.0))
        return Vector(out)

    def regularize(self, w: Vector, strength: float) -> None:
        """Decoupled weight decay: ``w *= 1 - strength`` (``0 <= strength <= 1``)."""
        if not isinstance(strength, numbers.Real) or not 0 <= strength <= 1:
            raise ValueError(f"regularize strength must be a real number in [0, 1], got {strength!r}")
        with torch.no_grad():
            w *= 1.0 - float(strength)

    def __repr__(self) -> str:
        return (
            f"ElmanRNN(hidden={self.hidden}, input={self.input}, nonlinearity={self.nonlinearity!r}, "
            f"bias={self.bias}, steps={self.steps}, mass={self.mass:g})"
        )
