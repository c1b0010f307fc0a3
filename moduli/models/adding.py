"""Adding problem: a read-out on the last hidden state."""

from __future__ import annotations

from torch import Tensor, nn

from .base import RecurrentModel
from .elman_stack import ElmanStack, RegularizerFactory


class AddingRNN(RecurrentModel):
    """inputs (T, B, 2) -> prediction (B, 1) from the last hidden state.

    Args:
        hidden_size: 128 in the paper.
        nonlinearity: "relu" (paper) or "tanh".
        regularizer: factory of the moduli regulariser of W_hh.
        bias: biases in the recurrent layer (the authors' adding model has them); the read-out
            always has one.
        recurrent_init: rule for W_hh ("default", "identity", "orthogonal", "he_uniform"; see
            :mod:`moduli.models.recurrent_init`).
        recurrent_init_scale: factor of an identity or orthogonal W_hh.
    """

    PRUNABLE = ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "readout.weight")

    def __init__(
        self,
        hidden_size: int = 128,
        nonlinearity: str = "relu",
        regularizer: RegularizerFactory | None = None,
        bias: bool = True,
        recurrent_init: str = "default",
        recurrent_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.rnn = ElmanStack(
            2, hidden_size, 1, nonlinearity, bias=bias, regularizer=regularizer,
            recurrent_init=recurrent_init, recurrent_init_scale=recurrent_init_scale,
        )
        self.readout = nn.Linear(hidden_size, 1)  # last state -> sum

    def forward(self, inputs: Tensor) -> Tensor:
        _, h_n = self.rnn(inputs)
        return self.readout(h_n[-1])
