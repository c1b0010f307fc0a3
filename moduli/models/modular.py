"""Pieces of the modular-norm structure of a task model, for ``optimizer=modular_adam`` / ``modular_sgd``.

The task models keep their weights as ordinary ``nn.Parameter``s; each task describes its network
as a ``modula_core`` compound built from these pieces (Dense atoms for ``nn.Linear``, the model's
own ElmanRNN atoms for the recurrent layers) and returns its parameters in the compound's weight
order, so that ``module.normalize(update, lr)`` splits the step by mass and sensitivity exactly as
Modula does.
"""

from __future__ import annotations

from torch import nn

from modula_core import Module
from modula_core.bond import Identity
from modula_core.dense import Dense

from .adding import LastStateRNN
from .base import RecurrentModel

__all__ = ["dense", "last_state", "recurrent"]


def dense(layer: nn.Linear) -> tuple[Module, list[nn.Parameter]]:
    """A Dense atom for ``layer`` and its parameters (weight, then bias)."""
    atom = Dense(layer.out_features, layer.in_features, bias=layer.bias is not None)
    return atom, [layer.weight] + ([layer.bias] if layer.bias is not None else [])


def recurrent(model: RecurrentModel) -> tuple[Module, list[nn.Parameter]]:
    """The model's stacked ElmanRNN atoms composed layer after layer, and their parameters."""
    stack = model.rnn
    module, params = stack.cells[0], stack.layer_parameters(0)
    for layer in range(1, stack.num_layers):
        module = stack.cells[layer] @ module
        params = params + stack.layer_parameters(layer)
    return module, params


def last_state(model: LastStateRNN) -> tuple[Module, list[nn.Parameter]]:
    """A read-out of the last state: a weightless, sensitivity-1 step between the rnn and the read-out."""
    rnn, rnn_params = recurrent(model)
    readout, out_params = dense(model.readout)
    return readout @ Identity() @ rnn, rnn_params + out_params
