"""Path integration (navigation): velocities in, place-cell distributions out.

After Sorscher et al.: the initial hidden state is the encoding of the place-cell activations at
the start position; every Linear has no bias.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import RecurrentModel
from .elman_stack import ElmanStack, RegularizerFactory


class PathIntegrationRNN(RecurrentModel):
    """velocity (T, B, 2), start activation (B, P) -> place-cell logits (T, B, P).

    Args:
        num_place_cells: P.
        hidden_size: N (4096 in the paper).
        nonlinearity: "relu" (paper) or "tanh".
        regularizer: factory of the moduli regulariser of W_hh.
        bias: biases in the recurrent layer (none in the paper); encoder and decoder never have one.
        recurrent_init: rule for W_hh ("default", "identity", "orthogonal", "he_uniform"; see
            :mod:`moduli.models.recurrent_init`).
        recurrent_init_scale: factor of an identity or orthogonal W_hh.
        check_inputs: refuse NaN or infinite inputs (one device sync per call); the navigation
            task turns it off, its trajectories being finite by construction.
    """

    PRUNABLE = ("encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "decoder.weight")

    def __init__(
        self,
        num_place_cells: int = 512,
        hidden_size: int = 4096,
        nonlinearity: str = "relu",
        regularizer: RegularizerFactory | None = None,
        bias: bool = False,
        recurrent_init: str = "default",
        recurrent_init_scale: float = 1.0,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        self.check_inputs = check_inputs
        self.encoder = nn.Linear(num_place_cells, hidden_size, bias=False)  # start place cells -> h0
        self.rnn = ElmanStack(
            2, hidden_size, 1, nonlinearity, bias=bias, regularizer=regularizer,
            recurrent_init=recurrent_init, recurrent_init_scale=recurrent_init_scale,
        )
        self.decoder = nn.Linear(hidden_size, num_place_cells, bias=False)  # hidden -> place-cell logits

    def forward(self, velocity: Tensor, start_activation: Tensor) -> Tensor:
        if self.check_inputs:  # a device sync: only where inputs come from outside (the task's are finite)
            for what, x in (("velocity", velocity), ("start_activation", start_activation)):
                if isinstance(x, Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
                    raise ValueError(f"{what} contains NaN or infinite values; every input must be finite")
        h0 = self.encoder(start_activation).unsqueeze(0)
        states, _ = self.rnn(velocity, h0)
        return self.decoder(states)
