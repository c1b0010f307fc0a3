"""A multi-layer Elman RNN as a ``torch.nn.Module``, on the single ``modula_core`` Elman RNN cell.

Parameters are named as in ``torch.nn.RNN`` (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
...), so users, ``torch.nn.utils.prune`` and checkpoints see familiar names. Each layer's
weights are handed to ``modula_core.recurrent.ElmanRNN`` (fused cuDNN / oneDNN kernel when the
weights allow it), and each layer may carry its own moduli regulariser (its own neuron embedding).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from modula_core import Vector
from modula_core.recurrent import ElmanRNN

from ..regularizer import ModuliRegularizer
from .recurrent_init import check_recurrent_init, init_recurrent_

NONLINEARITIES = ("relu", "tanh")

RegularizerFactory = Callable[[int, int], ModuliRegularizer]  # (layer index, hidden size) -> regulariser


class ElmanStack(nn.Module):
    """``num_layers`` Elman layers; input (T, B, input_size) -> output (T, B, hidden_size).

    Args:
        input_size: features per time step of the first layer's input.
        hidden_size: N, neurons per layer.
        num_layers: stacked layers; layer l > 0 reads layer l-1's hidden states.
        nonlinearity: "relu" or "tanh".
        bias: add ``bias_ih`` and ``bias_hh`` as torch.nn.RNN does.
        dropout: dropout between layers (training only), as torch.nn.RNN.
        regularizer: optional factory building one regulariser per layer.
        recurrent_init: rule for every W_hh (see :mod:`moduli.models.recurrent_init`).
        recurrent_init_scale: factor of the identity / orthogonal W_hh.
    """

    input_size: int  # features of the input sequence
    hidden_size: int  # neurons per layer
    num_layers: int  # stacked layers
    nonlinearity: str  # "relu" | "tanh"
    bias: bool  # whether the layers have biases
    dropout: float  # dropout probability between layers
    recurrent_init: str  # initialisation rule of every W_hh
    recurrent_init_scale: float  # its scale (identity, orthogonal)
    cells: list[ElmanRNN]  # the modula_core atoms, one per layer (weights live in this module)
    regularizers: nn.ModuleList | None  # one ModuliRegularizer per layer, or None

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "relu",
        bias: bool = False,
        dropout: float = 0.0,
        regularizer: RegularizerFactory | None = None,
        recurrent_init: str = "default",
        recurrent_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        check_recurrent_init(recurrent_init, recurrent_init_scale)
        self.recurrent_init, self.recurrent_init_scale = recurrent_init, float(recurrent_init_scale)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.nonlinearity, self.bias, self.dropout = nonlinearity, bool(bias), float(dropout)
        self.cells = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size
            self.cells.append(ElmanRNN(hidden_size, layer_input, nonlinearity=nonlinearity, bias=bias))
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(hidden_size, layer_input)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            if bias:
                self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(hidden_size)))
                self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()
        self.regularizers = (
            nn.ModuleList(regularizer(layer, hidden_size) for layer in range(num_layers)) if regularizer else None
        )
        if self.regularizers is not None:
            for layer, reg in enumerate(self.regularizers):
                if not isinstance(reg, ModuliRegularizer):
                    raise TypeError(
                        f"the regularizer factory must return a ModuliRegularizer, got {type(reg).__name__} "
                        f"for layer {layer}"
                    )
                if reg.num_neurons != hidden_size:
                    raise ValueError(
                        f"regulariser of layer {layer} was built for {reg.num_neurons} neurons but the layer has "
                        f"{hidden_size}; build it with num_neurons={hidden_size}"
                    )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """torch.nn.RNN's default initialisation (every entry ~ U(-1/sqrt(N), 1/sqrt(N))), then
        every W_hh by ``self.recurrent_init`` (the lottery ticket's re-initialisation calls this)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.layer_parameters_flat():
                p.uniform_(-bound, bound, generator=generator)
        if self.recurrent_init != "default":
            for weight in self.recurrent_weights():
                init_recurrent_(weight, self.recurrent_init, self.recurrent_init_scale, generator=generator)

    def layer_parameters(self, layer: int) -> list[nn.Parameter]:
        """Layer ``layer``'s weights in torch.nn.RNN's flat order (W_ih, W_hh[, b_ih, b_hh])."""
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
        return [getattr(self, f"{n}_l{layer}") for n in names]

    def layer_parameters_flat(self) -> list[nn.Parameter]:
        return [p for layer in range(self.num_layers) for p in self.layer_parameters(layer)]

    def recurrent_weights(self) -> list[nn.Parameter]:
        """The (N, N) hidden-to-hidden matrices, one per layer."""
        return [getattr(self, f"weight_hh_l{layer}") for layer in range(self.num_layers)]

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (T, B, input_size), h0 (num_layers, B, N) or None -> (output (T, B, N), h_n (num_layers, B, N))."""
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a tensor of shape (T, B, {self.input_size}), got {type(x).__name__}")
        if h0 is not None and not isinstance(h0, Tensor):
            raise TypeError(
                f"h0 must be a tensor of shape ({self.num_layers}, B, {self.hidden_size}) or None, got {type(h0).__name__}"
            )
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"input must have shape (T, B, {self.input_size}), got {tuple(x.shape)}")
        if h0 is not None and h0.shape != (self.num_layers, x.shape[1], self.hidden_size):
            raise ValueError(
                f"h0 must have shape ({self.num_layers}, {x.shape[1]}, {self.hidden_size}), got {tuple(h0.shape)}"
            )
        finals = []
        out = x
        for layer, cell in enumerate(self.cells):
            if layer > 0 and self.dropout > 0 and self.training:
                out = nn.functional.dropout(out, self.dropout, training=True)
            state = h0[layer] if h0 is not None else out.new_zeros(x.shape[1], self.hidden_size)
            out = cell((out, state), Vector(self.layer_parameters(layer)))
            finals.append(out[-1])
        return out, torch.stack(finals)

    def penalty(self) -> Tensor:
        """Sum over layers of each layer's moduli penalty of its W_hh (0 without regularisers)."""
        if self.regularizers is None:
            return self.weight_hh_l0.new_zeros(())
        return sum(reg(w) for reg, w in zip(self.regularizers, self.recurrent_weights()))

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Learned neuron positions (geoopt ManifoldParameters), for a Riemannian optimiser."""
        if self.regularizers is None:
            return []
        return [reg.embedding for reg in self.regularizers if reg.learn_embedding]

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"nonlinearity={self.nonlinearity!r}, bias={self.bias}, dropout={self.dropout}"
            + (f", recurrent_init={self.recurrent_init!r}" if self.recurrent_init != "default" else "")
            + (f", recurrent_init_scale={self.recurrent_init_scale}" if self.recurrent_init_scale != 1.0 else "")
        )
