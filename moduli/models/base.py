"""What the task models share: an ElmanStack ``rnn``, its penalty and its parameter groups."""

from __future__ import annotations

from torch import Tensor, nn

from .elman_stack import ElmanStack


class RecurrentModel(nn.Module):
    """Base of the task models; subclasses set ``self.rnn`` and ``PRUNABLE``."""

    rnn: ElmanStack  # the recurrent core
    PRUNABLE: tuple[str, ...] = ()  # parameter names pruned by default (the paper's choice)

    def penalty(self) -> Tensor:
        """The moduli penalty summed over layers (0-d tensor)."""
        return self.rnn.penalty()

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Learned neuron positions (for RiemannianAdam / RiemannianSGD)."""
        return self.rnn.embedding_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter except the learned neuron positions."""
        embedding_ids = {id(p) for p in self.embedding_parameters()}
        return [p for p in self.parameters() if id(p) not in embedding_ids]

    def prunable_names(self) -> list[str]:
        """Names (as in ``named_parameters``) of the matrices the paper prunes for this task."""
        return list(self.PRUNABLE)
