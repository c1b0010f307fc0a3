"""K independent Elman layers computed as one batched recurrence (seeds trained as one model)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["stacked_elman"]


def stacked_elman(
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    nonlinearity: str,
    per_run_projection: bool = False,
) -> Tensor:
    """K independent Elman layers: x (K, T, B, I), h0 (K, B, N) or None, w_ih (K, N, I),
    w_hh (K, N, N), b_ih / b_hh (K, N) or None -> all hidden states (K, T, B, N).

    The operations mirror torch's own CPU RNN loop (input projections of all steps first, then
    ``phi(h W_hh^T + b_hh + pre_t)`` per step), so on CPU every slice equals the unbatched run.
    ``per_run_projection`` computes the input projections with one ``F.linear`` per run, as torch's
    loop does, instead of one batched product: wider inputs (8 features) then keep their last bits.
    """
    if nonlinearity not in ("relu", "tanh"):
        raise ValueError(f"nonlinearity must be 'relu' or 'tanh', got {nonlinearity!r}")
    if x.dim() != 4 or w_ih.dim() != 3 or w_hh.dim() != 3 or x.shape[0] != w_ih.shape[0]:
        raise ValueError(
            f"expected x (K, T, B, I), w_ih (K, N, I), w_hh (K, N, N); got {tuple(x.shape)}, "
            f"{tuple(w_ih.shape)}, {tuple(w_hh.shape)}"
        )
    k, steps, batch, features = x.shape
    hidden = w_hh.shape[-1]
    flat = x.reshape(k, steps * batch, features)
    if per_run_projection:
        pre = torch.stack([
            torch.nn.functional.linear(flat[i], w_ih[i], None if b_ih is None else b_ih[i]) for i in range(k)
        ])
    elif b_ih is not None:
        pre = torch.baddbmm(b_ih.unsqueeze(1), flat, w_ih.transpose(1, 2))
    else:
        pre = torch.bmm(flat, w_ih.transpose(1, 2))
    # unbind (as torch's loop does), not pre[:, t]: the backward of T selects would add T
    # zero-filled (K, T, B, N) gradients
    pre = pre.view(k, steps, batch, hidden).unbind(1)
    phi = torch.relu if nonlinearity == "relu" else torch.tanh
    h = x.new_zeros(k, batch, hidden) if h0 is None else h0
    states = []
    for t in range(steps):
        # transpose inside the loop, as torch's linear does: the T gradient contributions then
        # reach W_hh in the same order as in an unbatched run
        if b_hh is not None:
            hh = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh.transpose(1, 2))
        else:
            hh = torch.bmm(h, w_hh.transpose(1, 2))
        h = phi(hh.add_(pre[t]))
        states.append(h)
    return torch.stack(states, 1)
