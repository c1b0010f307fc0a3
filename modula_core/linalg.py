"""Matrix helpers shared by the atoms: orthogonal init, power iteration and the one spectral
normaliser, Newton–Schulz orthogonalisation.

All functions act on the last two dimensions, so a stack of matrices (e.g. the taps of a
convolution, or K independent runs) is handled in one batched call.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

# Newton–Schulz coefficient schedules (a, b, c): X <- a X + b (X X^T) X + c (X X^T)^2 X.
#
# Measured singular values of newton_schulz(G) (float32, CPU, 3 draws each; G is divided by its
# Frobenius norm first, so an input singular value s maps to p(s / ||G||_F) for the schedule's
# composed odd polynomial p):
#
#   schedule  Gaussian (256,1024)  Gaussian (1024,256)  Gaussian (512,512)  rank-8 + 1e-3 noise (256,1024)
#   cubic     [0.9747, 1.0000]     [0.9739, 1.0000]     [0.0002, 1.0000]    top-8 [0.476, 1.000]
#   quintic   [0.9873, 1.0185]     [0.9897, 1.0185]     [0.0130, 1.2103]    top-8 [0.980, 1.071]
#   tuned6    [0.9956, 0.9993]     [0.9956, 0.9993]     [0.0034, 0.9993]    top-8 [0.996, 0.999]
#
# (the rank-8 test matrix has its 8 directions at strengths 1 .. 1e-2; its noise directions, of
# singular value ~1e-3 relative, come out at 0.002 (cubic), 0.02 (quintic), 0.03 (tuned6): they are
# not orthogonalised, which is the intended behaviour for noise).
# Square Gaussian matrices have singular values near 0 (the smallest of a 512x512 one is ~1e-3 of
# the largest), and no schedule lifts those to 1: the low end there is 0.0002-0.013. The scalar
# map p on [0, 1]: sup 1.0000 (cubic), 1.2105 (quintic), 0.9993 (tuned6); its minimum over
# [0.05, 1] is 0.9995 / 0.9898 / 0.9956 and over [0.01, 1] 0.529 / 0.972 / 0.9956. The spectral
# norm of the output (the largest value) therefore lies in [min p on [1/sqrt(rank), 1], sup p].
NS_COEFFICIENTS: dict[str, list[tuple[float, float, float]]] = {
    # The classic cubic iteration, run for 10 steps: converges to the polar factor, slowly for
    # small singular values.
    "cubic": [(1.5, -0.5, 0.0)] * 10,
    # A quintic with a steeper slope at 0, run for 6 steps.
    "quintic": [(3.0, -3.2, 1.2)] * 6,
    # A tuned six-step schedule (one coefficient triple per step).
    "tuned6": [
        (3955 / 1024, -8306 / 1024, 5008 / 1024),
        (3735 / 1024, -6681 / 1024, 3463 / 1024),
        (3799 / 1024, -6499 / 1024, 3211 / 1024),
        (4019 / 1024, -6385 / 1024, 2906 / 1024),
        (2677 / 1024, -3029 / 1024, 1162 / 1024),
        (2172 / 1024, -1833 / 1024, 682 / 1024),
    ],
}
DEFAULT_NS = "tuned6"


def orthogonal(shape: tuple[int, ...], generator: torch.Generator | None = None, device=None, dtype=None) -> Tensor:
    """A (stack of) semi-orthogonal matrices of the given shape (..., out, in), all singular values 1."""
    *batch, rows, cols = shape
    g = torch.randn(*batch, max(rows, cols), min(rows, cols), generator=generator, device=device, dtype=torch.float64 if dtype is None else dtype)
    q, r = torch.linalg.qr(g)
    # Fix the signs so the distribution is Haar (QR alone is biased by the sign convention).
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    if rows < cols:
        q = q.mT
    return q.to(dtype=dtype or torch.get_default_dtype()).contiguous()


def power_iteration(w: Tensor, u: Tensor | None = None, steps: int = 1, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Estimate the largest singular value of ``w`` (..., out, in).

    ``u`` (..., out) warm-starts the left singular vector (pass the one returned last time);
    returns ``(sigma (...), u (..., out))``. A few warm-started steps per call track a slowly
    changing matrix as well as a full SVD would.
    """
    if u is None or u.shape != w.shape[:-1]:
        u = torch.randn(w.shape[:-1], device=w.device, dtype=w.dtype)
        steps = max(steps, 10)
    u = u.to(device=w.device, dtype=w.dtype)
    for _ in range(steps):
        v = torch.nn.functional.normalize((w.mT @ u.unsqueeze(-1)).squeeze(-1), dim=-1, eps=eps)
        u = torch.nn.functional.normalize((w @ v.unsqueeze(-1)).squeeze(-1), dim=-1, eps=eps)
    sigma = (u.unsqueeze(-2) @ w @ v.unsqueeze(-1)).squeeze(-1).squeeze(-1).abs()
    return sigma, u


# Seed of the fixed generator that starts power iteration when an atom has no warm start yet, so that
# processes that see the same updates (data-parallel ranks, a rerun) get the same estimates.
POWER_SEED = 1234


def start_vector(shape: torch.Size, like: Tensor) -> Tensor:
    """A fixed unit start vector (..., out) for power iteration (seed :data:`POWER_SEED`), like ``like``."""
    gen = torch.Generator(device="cpu").manual_seed(POWER_SEED)
    return torch.nn.functional.normalize(torch.randn(shape, generator=gen, dtype=torch.float64), dim=-1).to(
        device=like.device, dtype=like.dtype
    )


def spectral_norm_estimate(
    w: Tensor,
    buffers: dict[str, Tensor],
    steps: int,
    key: str = "u",
    start: Callable[[torch.Size, Tensor], Tensor] = start_vector,
) -> Tensor:
    """Estimated spectral norms (...) of ``w`` (..., out, in) by warm-started power iteration.

    The left singular vector estimate is kept in ``buffers[key]`` (..., out); a cold start takes
    ``start(shape, w)`` and at least 10 steps. A zero matrix gives 0 and keeps the old start (its
    u = 0 would stall every later call); if a cold start learnt nothing, nothing is stored.
    """
    wf = w if w.dtype in (torch.float32, torch.float64) else w.float()
    u = buffers.get(key)
    if u is None or u.shape != wf.shape[:-1]:
        u = start(wf.shape[:-1], wf)
        steps = max(steps, 10)
    sigma, u_new = power_iteration(wf, u, steps=steps)
    nonzero = sigma > 0
    if key in buffers or bool(nonzero.any()):
        buffers[key] = torch.where(nonzero.unsqueeze(-1), u_new, u.to(u_new)).detach()
    return sigma


def spectral_normalize_(w: Tensor, buffers: dict[str, Tensor], steps: int, target_norm: float) -> None:
    """Scale ``w`` (..., out, in) in place so each matrix's estimated spectral norm is ``target_norm``
    (:func:`spectral_norm_estimate`, warm start in ``buffers["u"]``). Zero matrices stay zero."""
    sigma = spectral_norm_estimate(w, buffers, steps)
    nonzero = sigma > 0
    scale = torch.where(nonzero, target_norm / torch.where(nonzero, sigma, torch.ones_like(sigma)), torch.zeros_like(sigma))
    w.mul_(scale.to(w.dtype).unsqueeze(-1).unsqueeze(-1))


def newton_schulz(g: Tensor, schedule: str = DEFAULT_NS, eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalise ``g`` (..., out, in): replace its singular values by ~1.

    Works on ``g / ||g||_F`` (so every singular value starts in [0, 1]) and transposes first when
    out > in, so the Gram matrix ``X X^T`` is the small one. A zero matrix stays zero.
    """
    if schedule not in NS_COEFFICIENTS:
        raise ValueError(f"unknown Newton–Schulz schedule {schedule!r}; choose one of {sorted(NS_COEFFICIENTS)}")
    x = g / (torch.linalg.matrix_norm(g, ord="fro", keepdim=True) + eps)
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    for a, b, c in NS_COEFFICIENTS[schedule]:
        gram = x @ x.mT
        x = a * x + (b * gram + c * (gram @ gram)) @ x
    return x.mT if transposed else x
