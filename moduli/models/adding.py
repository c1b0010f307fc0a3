"""Models that read out the last hidden state: the adding problem and sequence classification."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .base import RecurrentModel
from .elman_stack import ElmanStack, RegularizerFactory
from .stacked import stacked_elman


class LastStateRNN(RecurrentModel):
    """inputs (T, B, I) -> read-out (B, O) of the last hidden state.

    Args:
        input_size: I, features per time step.
        output_size: O, outputs of the read-out (it always has a bias).
        hidden_size: N.
        nonlinearity: "relu" (paper) or "tanh".
        regularizer: factory of the moduli regulariser of W_hh.
        bias: biases in the recurrent layer.
        recurrent_init: rule for W_hh ("default", "identity", "orthogonal", "he_uniform"; see
            :mod:`moduli.models.recurrent_init`).
        recurrent_init_scale: factor of an identity or orthogonal W_hh.
    """

    PRUNABLE = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "readout.weight")

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 128,
        nonlinearity: str = "relu",
        regularizer: RegularizerFactory | None = None,
        bias: bool = True,
        recurrent_init: str = "default",
        recurrent_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.rnn = ElmanStack(
            input_size, hidden_size, 1, nonlinearity, bias=bias, regularizer=regularizer,
            recurrent_init=recurrent_init, recurrent_init_scale=recurrent_init_scale,
        )
        self.readout = nn.Linear(hidden_size, output_size)  # last state -> outputs

    def forward(self, inputs: Tensor) -> Tensor:
        _, h_n = self.rnn(inputs)
        return self.readout(h_n[-1])

    def stacked_forward(self, inputs: Tensor, params: dict[str, Tensor], per_run_projection: bool = False) -> list[Tensor]:
        """K models of this shape at once: inputs (K, T, B, I), ``params`` name -> (K, *shape) ->
        the K read-outs (B, O), each as :meth:`forward` computes it (see :func:`stacked_elman`)."""
        states = stacked_elman(
            inputs, None, params["rnn.weight_ih_l0"], params["rnn.weight_hh_l0"], params.get("rnn.bias_ih_l0"),
            params.get("rnn.bias_hh_l0"), self.rnn.nonlinearity, per_run_projection,
        )
        last, weight, bias = states[:, -1], params["readout.weight"], params["readout.bias"]
        # (B, N) x (N, O) per run: small enough that batched products would take torch's naive CPU
        # kernel (other rounding than mm), so one F.linear per run, as unbatched
        return [nn.functional.linear(last[k], weight[k], bias[k]) for k in range(inputs.shape[0])]


class AddingRNN(LastStateRNN):
    """inputs (T, B, 2) -> prediction (B, 1) of the sum; ``hidden_size`` 128 and recurrent biases
    (the authors' adding model) by default; ``options`` as :class:`LastStateRNN`'s."""

    def __init__(self, hidden_size: int = 128, nonlinearity: str = "relu", regularizer: RegularizerFactory | None = None,
                 **options: Any) -> None:
        super().__init__(2, 1, hidden_size, nonlinearity, regularizer, **options)
