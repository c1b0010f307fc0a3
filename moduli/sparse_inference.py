"""Inference-only export of pruned Elman RNNs with sparse recurrent matrices.

``export_sparse`` turns a (pruned) :class:`~moduli.models.ElmanStack` or a path-integration model
(``encoder -> rnn -> decoder``) into a :class:`SparseElman`: every weight matrix is stored dense,
as a torch sparse CSR tensor or as a BSR tensor (dense ``block x block`` tiles), and the
recurrence ``h_t = phi(W_ih x_t + b + W_hh h_{t-1})`` runs as sparse-times-dense products.

Neuron reordering. A moduli-pruned ``W_hh`` keeps connections between neurons that are close on
the manifold, but neuron indices are in random order, so its nonzeros are scattered. Sorting the
neurons along a locality-preserving curve (a Hilbert curve over the torus' fundamental domain,
the angle on a circle, a greedy nearest-neighbour tour otherwise) puts neighbours at nearby
indices and turns the mask into a nearly banded, block-sparse matrix. The permutation ``p``
(new index ``i`` holds old neuron ``p[i]``) is applied consistently: ``W_hh -> W_hh[p][:, p]``,
rows of ``W_ih`` and of the encoder, biases, columns of the next layer's ``W_ih`` and of the
decoder, and the initial / returned states, so that outputs equal the dense model's.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor, nn

from .manifolds import Circle, KleinBottle, Manifold, Torus
from .models.elman_stack import ElmanStack

__all__ = [
    "FORMATS",
    "REORDERS",
    "SparseElman",
    "block_density",
    "export_sparse",
    "hilbert_index",
    "manifold_order",
]

FORMATS = ("auto", "csr", "bsr", "dense")
REORDERS = ("manifold", "none")
# "auto": a matrix denser than this stays dense (sparse kernels lose to BLAS there)
AUTO_DENSE_ABOVE = 0.25
# "auto": BSR is chosen when the nonzero blocks are at least this full, else CSR
AUTO_BSR_FILL = 0.5


def _quiet(fn, *args, **kwargs):
    # torch warns that sparse CSR/BSR support is "beta" on every conversion; the export relies on it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse .* support is in beta.*")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- orders
def hilbert_index(ix: Tensor, iy: Tensor, order: int) -> Tensor:
    """Position along the Hilbert curve of cells ``(ix, iy)`` of a ``2^order x 2^order`` grid.

    ``ix``, ``iy``: integer tensors of equal shape with values in ``[0, 2^order)``. Returns int64
    of the same shape with values in ``[0, 4^order)``; consecutive positions are edge-adjacent cells.
    """
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 30:
        raise ValueError(f"order must be an int in [0, 30] (grid side 2^order), got {order!r}")
    if not isinstance(ix, Tensor) or not isinstance(iy, Tensor) or ix.shape != iy.shape:
        raise ValueError("ix and iy must be integer tensors of the same shape")
    if ix.is_floating_point() or iy.is_floating_point():
        raise TypeError(f"ix and iy must be integer tensors, got {ix.dtype} and {iy.dtype}; use floor().long()")
    n = 1 << order
    x, y = ix.long().clone(), iy.long().clone()
    if bool(((x < 0) | (x >= n) | (y < 0) | (y >= n)).any()):
        raise ValueError(f"cell indices must lie in [0, {n}) for order {order}")
    d = torch.zeros_like(x)
    s = n >> 1
    while s > 0:
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx.long()) ^ ry.long())
        # rotate the quadrant so that the sub-curve has the canonical orientation
        flip = (~ry) & rx
        x = torch.where(flip, n - 1 - x, x)
        y = torch.where(flip, n - 1 - y, y)
        swap = ~ry
        x, y = torch.where(swap, y, x), torch.where(swap, x, y)
        s >>= 1
    return d


def _greedy_tour(manifold: Manifold, points: Tensor) -> Tensor:
    # nearest-neighbour tour from neuron 0: O(N^2) distances, N argmin steps
    d = manifold.pairwise_distance(points).detach().clone()
    n = d.shape[0]
    order = torch.empty(n, dtype=torch.long, device=points.device)
    visited = torch.zeros(n, dtype=torch.bool, device=points.device)
    current = 0
    for i in range(n):
        order[i] = current
        visited[current] = True
        if i + 1 < n:
            row = d[current].masked_fill(visited, float("inf"))
            current = int(torch.argmin(row))
    return order


def manifold_order(manifold: Manifold, points: Tensor) -> Tensor:
    """Permutation (N,) of neurons sorted along the manifold; new index ``i`` holds neuron ``p[i]``.

    2-D torus / Klein bottle: Hilbert curve over a ``2^k x 2^k`` grid of the fundamental domain
    (``4^k >= N``, ties kept in index order); 1-D torus: coordinate; circle: angle; anything else:
    greedy nearest-neighbour tour. ``points``: (N, coord_dim) positions on ``manifold``.
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a moduli Manifold, got {type(manifold).__name__}")
    manifold.check_points(points, "neuron positions")
    if points.dim() != 2:
        raise ValueError(f"neuron positions must have shape (N, {manifold.coord_dim}), got {tuple(points.shape)}")
    points = points.detach()
    n = points.shape[0]
    if isinstance(manifold, (Torus, KleinBottle)) and manifold.coord_dim == 2:
        k = max(1, math.ceil(math.log(max(n, 2), 4)))
        side = 1 << k
        cells = torch.floor(manifold.project(points) / manifold.period * side).long().clamp_(0, side - 1)
        key = hilbert_index(cells[:, 0], cells[:, 1], k)
        return torch.sort(key, stable=True).indices
    if isinstance(manifold, Torus) and manifold.coord_dim == 1:
        return torch.sort(manifold.project(points)[:, 0], stable=True).indices
    if isinstance(manifold, Circle):
        return torch.sort(torch.atan2(points[:, 1], points[:, 0]), stable=True).indices
    return _greedy_tour(manifold, points)


def block_density(matrix: Tensor, block: int = 16) -> float:
    """Fraction of the ``block x block`` tiles of a 2-D ``matrix`` that hold a nonzero entry.

    Works on bool masks and on weight matrices (nonzero = kept); ragged edge tiles count as tiles.
    """
    if not isinstance(matrix, Tensor) or matrix.dim() != 2:
        raise ValueError(f"matrix must be a 2-D tensor, got {getattr(matrix, 'shape', type(matrix).__name__)}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive int, got {block!r}")
    nz = (matrix != 0).float()[None, None]
    tiles = nn.functional.max_pool2d(nz, kernel_size=block, stride=block, ceil_mode=True)
    return float(tiles.mean())


# ----------------------------------------------------------------------------- storage
def _pack(weight: Tensor, fmt: str, block: int, strict: bool = True) -> Tensor:
    """``weight`` (out, in) stored dense, CSR or BSR (``fmt`` already validated).

    With ``fmt="bsr"`` a matrix whose sides are not multiples of ``block`` raises if ``strict``,
    else is stored as CSR (input / output matrices such as a (N, 2) W_ih).
    """
    w = weight.detach().contiguous()
    if fmt == "auto":
        density = float((w != 0).float().mean())
        if density > AUTO_DENSE_ABOVE or min(w.shape) < block:
            fmt = "dense"
        elif w.shape[0] % block or w.shape[1] % block:
            fmt = "csr"
        else:
            nonzero_tiles = block_density(w, block) * w.numel() / block**2
            fill = float((w != 0).sum()) / max(nonzero_tiles * block**2, 1.0)
            fmt = "bsr" if fill >= AUTO_BSR_FILL else "csr"
    if fmt == "dense":
        return w.clone()
    if fmt == "csr":
        return _quiet(w.to_sparse_csr)
    if w.shape[0] % block or w.shape[1] % block:
        if strict:
            raise ValueError(
                f"format='bsr' needs W_hh's side divisible by block_size={block}, got {tuple(w.shape)}; "
                "use format='csr' or a block size dividing the hidden size"
            )
        return _quiet(w.to_sparse_csr)
    return _quiet(w.to_sparse_bsr, (block, block))


def _layout(t: Tensor) -> str:
    return {torch.sparse_csr: "csr", torch.sparse_bsr: "bsr"}.get(t.layout, "dense")


def _mm(a: Tensor, x: Tensor) -> Tensor:
    """``a`` (out, in; dense/CSR/BSR) @ ``x`` (in, cols) -> dense (out, cols)."""
    return _quiet(torch.mm, a, x) if a.layout != torch.strided else a @ x


def _addmm(bias: Tensor, a: Tensor, x: Tensor) -> Tensor:
    return _quiet(torch.addmm, bias, a, x) if a.layout != torch.strided else torch.addmm(bias, a, x)


# ----------------------------------------------------------------------------- module
class SparseElman(nn.Module):
    """Inference-only Elman RNN (stack or path-integration model) on sparse weights.

    Built by :func:`export_sparse`. Hidden states are kept as ``(N, B)`` columns so that every
    product is ``sparse (out, in) @ dense (in, B)``. ``forward`` runs under ``torch.no_grad``.

    Stack: ``forward(x (T, B, I), h0 (L, B, N) | None) -> (out (T, B, N), h_n (L, B, N))``,
    in the original neuron order. Path integration: ``forward(velocity (T, B, 2), start (B, P))
    -> logits (T, B, P)``.
    """

    kind: str  # "stack" or "path_integration"
    nonlinearity: str  # "relu" | "tanh"
    num_layers: int  # L
    hidden_size: int  # N
    input_size: int  # I, features per step of the first layer
    w_ih: list[Tensor]  # per layer, (N, I or N) permuted input weights (dense / CSR / BSR)
    w_hh: list[Tensor]  # per layer, (N, N) permuted recurrent weights (dense / CSR / BSR)
    bias: list[Tensor | None]  # per layer, (N, 1) permuted b_ih + b_hh, or None
    permutations: list[Tensor]  # per layer, (N,) int64: new index i holds original neuron p[i]
    inverses: list[Tensor]  # per layer, (N,) int64 inverse permutations
    encoder: Tensor | None  # (N, P) permuted encoder rows (path integration), else None
    encoder_bias: Tensor | None  # (N, 1) or None
    decoder: Tensor | None  # (P, N) permuted decoder columns (path integration), else None
    decoder_bias: Tensor | None  # (P, 1) or None

    def __init__(
        self,
        kind: str,
        nonlinearity: str,
        w_ih: Sequence[Tensor],
        w_hh: Sequence[Tensor],
        bias: Sequence[Tensor | None],
        permutations: Sequence[Tensor],
        encoder: tuple[Tensor, Tensor | None] | None = None,
        decoder: tuple[Tensor, Tensor | None] | None = None,
    ) -> None:
        super().__init__()
        self.kind, self.nonlinearity = kind, nonlinearity
        self.num_layers = len(w_hh)
        self.hidden_size = int(w_hh[0].shape[0])
        self.input_size = int(w_ih[0].shape[1])
        self.w_ih, self.w_hh, self.bias = list(w_ih), list(w_hh), list(bias)
        self.permutations = list(permutations)
        self.inverses = [torch.argsort(p) for p in self.permutations]
        self.encoder, self.encoder_bias = encoder if encoder is not None else (None, None)
        self.decoder, self.decoder_bias = decoder if decoder is not None else (None, None)

    def formats(self) -> dict[str, str]:
        """Storage of every matrix: name -> "dense" | "csr" | "bsr"."""
        out = {}
        for layer in range(self.num_layers):
            out[f"w_ih_l{layer}"] = _layout(self.w_ih[layer])
            out[f"w_hh_l{layer}"] = _layout(self.w_hh[layer])
        if self.encoder is not None:
            out["encoder"] = _layout(self.encoder)
        if self.decoder is not None:
            out["decoder"] = _layout(self.decoder)
        return out

    def _run(self, x: Tensor, h0: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x (T, B, I) and permuted (N, B) initial states -> permuted states (T, N, B), finals."""
        t_len, batch = x.shape[0], x.shape[1]
        phi = torch.relu_ if self.nonlinearity == "relu" else torch.tanh_
        inputs = x.reshape(t_len * batch, -1).T  # (I, T*B)
        finals = []
        states = x
        for layer in range(self.num_layers):
            n = self.hidden_size
            pre = _mm(self.w_ih[layer], inputs)  # (N, T*B)
            if self.bias[layer] is not None:
                pre = pre + self.bias[layer]
            pre = pre.view(n, t_len, batch).permute(1, 0, 2).contiguous()  # (T, N, B)
            states = torch.empty_like(pre)
            h = h0[layer]
            w_hh = self.w_hh[layer]
            for t in range(t_len):
                h = phi(_addmm(pre[t], w_hh, h))
                states[t] = h
            finals.append(h)
            inputs = states.permute(1, 0, 2).reshape(n, t_len * batch)  # (N, T*B)
        return states, finals

    @torch.no_grad()
    def forward(self, x: Tensor, h0_or_start: Tensor | None = None):
        """See the class docstring for the two signatures."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"input must be a tensor of shape (T, B, {self.input_size}), got {getattr(x, 'shape', type(x).__name__)}"
            )
        dtype = self.w_hh[0].dtype
        if x.dtype != dtype:
            raise TypeError(f"input dtype {x.dtype} differs from the exported weights' {dtype}; cast the input")
        t_len, batch = x.shape[0], x.shape[1]
        n = self.hidden_size
        if self.kind == "path_integration":
            start = h0_or_start
            p = self.encoder.shape[1]
            if not isinstance(start, Tensor) or start.shape != (batch, p):
                raise ValueError(f"start activation must be a tensor of shape ({batch}, {p}), got "
                                 f"{getattr(start, 'shape', type(start).__name__)}")
            h = _mm(self.encoder, start.T.contiguous())
            if self.encoder_bias is not None:
                h = h + self.encoder_bias
            states, _ = self._run(x, [h])
            logits = _mm(self.decoder, states.permute(1, 0, 2).reshape(n, t_len * batch))  # (P, T*B)
            if self.decoder_bias is not None:
                logits = logits + self.decoder_bias
            return logits.T.reshape(t_len, batch, -1)
        h0 = h0_or_start
        if h0 is None:
            initial = [x.new_zeros(n, batch) for _ in range(self.num_layers)]
        else:
            if not isinstance(h0, Tensor) or h0.shape != (self.num_layers, batch, n):
                raise ValueError(f"h0 must have shape ({self.num_layers}, {batch}, {n}), got "
                                 f"{getattr(h0, 'shape', type(h0).__name__)}")
            initial = [h0[layer][:, self.permutations[layer]].T.contiguous() for layer in range(self.num_layers)]
        states, finals = self._run(x, initial)
        last = self.inverses[-1]
        out = states[:, last, :].permute(0, 2, 1)  # (T, B, N), original order
        h_n = torch.stack([f[self.inverses[layer]].T for layer, f in enumerate(finals)])
        return out, h_n

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, layers={self.num_layers}, hidden={self.hidden_size}, "
                f"nonlinearity={self.nonlinearity!r}, formats={self.formats()}")


def _layer_points(stack: ElmanStack, layer: int) -> tuple[Manifold, Tensor] | None:
    if stack.regularizers is None:
        return None
    reg = stack.regularizers[layer]
    return reg.manifold, reg.embedding.detach()


def export_sparse(
    model: nn.Module,
    reorder: str = "manifold",
    format: str = "auto",
    block_size: int = 16,
    positions: Sequence[tuple[Manifold, Tensor]] | None = None,
    sparse_io: bool = False,
) -> SparseElman:
    """Inference copy of a pruned Elman model with sparse weights (pruned entries are exact zeros).

    Args:
        model: an :class:`ElmanStack`, or a model with ``encoder`` (Linear P -> N), ``rnn``
            (ElmanStack) and ``decoder`` (Linear N -> P) such as ``PathIntegrationRNN``.
        reorder: "manifold" sorts each layer's neurons along its manifold (positions from the
            layer's moduli regulariser or ``positions``); "none" keeps the index order.
        format: "dense", "csr", "bsr" (``block_size`` tiles) or "auto" (dense above 25% density,
            BSR when the nonzero tiles are at least half full, else CSR) for W_hh, and for the other
            matrices when ``sparse_io``.
        block_size: BSR tile side; with "bsr" the hidden size must be divisible by it (other
            matrices whose sides are not multiples of it are stored as CSR).
        positions: per layer ``(manifold, (N, coord_dim) points)``, overriding the regularisers'.
        sparse_io: also store W_ih, encoder and decoder in ``format`` (default: they stay dense;
            they are small next to W_hh for path integration and run once per sequence).

    Returns:
        a :class:`SparseElman` on the model's device and dtype.
    """
    if reorder not in REORDERS:
        raise ValueError(f"reorder must be one of {REORDERS}, got {reorder!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if not isinstance(sparse_io, bool):
        raise TypeError(f"sparse_io must be a bool, got {type(sparse_io).__name__}")
    if isinstance(model, ElmanStack):
        kind, stack = "stack", model
    elif (
        isinstance(getattr(model, "rnn", None), ElmanStack)
        and isinstance(getattr(model, "encoder", None), nn.Linear)
        and isinstance(getattr(model, "decoder", None), nn.Linear)
    ):
        kind, stack = "path_integration", model.rnn
        if stack.num_layers != 1:
            raise ValueError("a path-integration model must have a one-layer rnn (the encoder sets its h0)")
    else:
        raise TypeError(
            "export_sparse needs an ElmanStack or a model with encoder (nn.Linear), rnn (ElmanStack) and "
            f"decoder (nn.Linear) such as PathIntegrationRNN; got {type(model).__name__}"
        )
    layers = stack.num_layers
    if positions is not None:
        if len(positions) != layers:
            raise ValueError(f"positions must hold one (manifold, points) pair per layer ({layers}), got {len(positions)}")
        for layer, pair in enumerate(positions):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], Manifold)):
                raise TypeError(f"positions[{layer}] must be a (Manifold, (N, coord_dim) tensor) pair")
            if not isinstance(pair[1], Tensor) or pair[1].dim() != 2 or pair[1].shape[0] != stack.hidden_size:
                raise ValueError(f"positions[{layer}] points must have shape ({stack.hidden_size}, coord_dim)")

    n = stack.hidden_size
    device = stack.weight_hh_l0.device
    perms: list[Tensor] = []
    for layer in range(layers):
        if reorder == "none":
            perms.append(torch.arange(n, device=device))
            continue
        located = positions[layer] if positions is not None else _layer_points(stack, layer)
        if located is None:
            raise ValueError(
                "reorder='manifold' needs neuron positions: build the model with a moduli regulariser, pass "
                "positions=[(manifold, points)] per layer, or use reorder='none'"
            )
        perms.append(manifold_order(located[0], located[1]).to(device))

    io_format = format if sparse_io else "dense"
    w_ih, w_hh, bias = [], [], []
    with torch.no_grad():
        for layer in range(layers):
            params = stack.layer_parameters(layer)
            p = perms[layer]
            wi = params[0][p]
            if layer > 0:
                wi = wi[:, perms[layer - 1]]
            w_ih.append(_pack(wi, io_format, block_size, strict=False))
            w_hh.append(_pack(params[1][p][:, p], format, block_size))
            bias.append((params[2] + params[3])[p].reshape(n, 1).clone() if stack.bias else None)
        encoder = decoder = None
        if kind == "path_integration":
            enc, dec = model.encoder, model.decoder
            encoder = (
                _pack(enc.weight[perms[0]], io_format, block_size, strict=False),
                None if enc.bias is None else enc.bias[perms[0]].reshape(-1, 1).clone(),
            )
            decoder = (
                _pack(dec.weight[:, perms[0]], io_format, block_size, strict=False),
                None if dec.bias is None else dec.bias.reshape(-1, 1).clone(),
            )
    return SparseElman(kind, stack.nonlinearity, w_ih, w_hh, bias, perms, encoder, decoder)
