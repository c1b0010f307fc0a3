"""Word-level language model: embedding -> stacked Elman RNN -> decoder (no weight tying)."""

from __future__ import annotations

from torch import Tensor, nn

from .base import RecurrentModel
from .elman_stack import ElmanStack, RegularizerFactory


class RNNLanguageModel(RecurrentModel):
    """tokens (T, B) -> logits (T, B, vocab), final states (L, B, N).

    Args:
        vocab_size: number of words.
        embedding_size: 650 in the paper.
        hidden_size: 650 in the paper.
        num_layers: 3 in the final research code.
        nonlinearity: "tanh" (paper) or "relu".
        dropout: between layers and on the embedding/decoder inputs (0 in the paper).
        regularizer: factory of one moduli regulariser per layer.
        bias: biases in the recurrent layers (torch.nn.RNN's default); the decoder always has one.
        recurrent_init: rule for every layer's W_hh ("default", "identity", "orthogonal", "he_uniform"; see
            :mod:`moduli.models.recurrent_init`).
        recurrent_init_scale: factor of an identity or orthogonal W_hh.
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int = 650,
        hidden_size: int = 650,
        num_layers: int = 3,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
        regularizer: RegularizerFactory | None = None,
        bias: bool = True,
        recurrent_init: str = "default",
        recurrent_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)  # token -> vector
        self.drop = nn.Dropout(dropout)
        self.rnn = ElmanStack(
            embedding_size, hidden_size, num_layers, nonlinearity, bias=bias, dropout=dropout,
            regularizer=regularizer, recurrent_init=recurrent_init, recurrent_init_scale=recurrent_init_scale,
        )
        self.decoder = nn.Linear(hidden_size, vocab_size)  # hidden -> next-token logits
        self.PRUNABLE = ("embedding.weight", "decoder.weight") + tuple(
            f"rnn.{kind}_l{layer}" for layer in range(num_layers) for kind in ("weight_ih", "weight_hh")
        )
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        states, h_n = self.rnn(self.drop(self.embedding(tokens)), hidden)
        return self.decoder(self.drop(states)), h_n

    def input_weights(self) -> list[nn.Parameter]:
        """The non-recurrent matrices the research code also L1-penalised in every run."""
        return [self.embedding.weight, self.decoder.weight] + [
            getattr(self.rnn, f"weight_ih_l{layer}") for layer in range(self.rnn.num_layers)
        ]
