"""The modular-norm structure of a task model, for ``optimizer=modular_adam`` / ``modular_sgd``.

The task models keep their weights as ordinary ``nn.Parameter``s; this module describes the same
network as a ``modula_core`` compound (Dense atoms for ``nn.Linear``, Embed for ``nn.Embedding``,
the model's own ElmanRNN atoms for the recurrent layers) and returns its parameters in the
compound's weight order, so that ``module.normalize(update, lr)`` splits the step by mass and
sensitivity exactly as Modula does.
"""

from __future__ import annotations

from torch import nn

from modula_core import Module
from modula_core.atom import Embed
from modula_core.bond import Identity, Select
from modula_core.dense import Dense

from ..models import AddingRNN, PathIntegrationRNN, RecurrentModel, RNNLanguageModel


def _dense(layer: nn.Linear) -> tuple[Module, list[nn.Parameter]]:
    atom = Dense(layer.out_features, layer.in_features, bias=layer.bias is not None)
    return atom, [layer.weight] + ([layer.bias] if layer.bias is not None else [])


def _recurrent(model: RecurrentModel) -> tuple[Module, list[nn.Parameter]]:
    stack = model.rnn
    module, params = stack.cells[0], stack.layer_parameters(0)
    for layer in range(1, stack.num_layers):
        module = stack.cells[layer] @ module
        params = params + stack.layer_parameters(layer)
    return module, params


def modular_structure(model: RecurrentModel) -> tuple[Module, list[nn.Parameter]]:
    """(compound, parameters in the compound's weight order) for one of the task models."""
    rnn, rnn_params = _recurrent(model)
    if isinstance(model, PathIntegrationRNN):
        # (velocity, start activation) -> rnn(velocity, encoder(start)) -> decoder
        encoder, enc_params = _dense(model.encoder)
        decoder, dec_params = _dense(model.decoder)
        return decoder @ rnn @ (Select(0), encoder @ Select(1)), enc_params + rnn_params + dec_params
    if isinstance(model, AddingRNN):
        # the read-out sees the last state: a weightless, sensitivity-1 step between rnn and read-out
        readout, out_params = _dense(model.readout)
        return readout @ Identity() @ rnn, rnn_params + out_params
    if isinstance(model, RNNLanguageModel):
        embed = Embed(model.embedding.embedding_dim, model.embedding.num_embeddings)
        decoder, dec_params = _dense(model.decoder)
        return decoder @ rnn @ embed, [model.embedding.weight] + rnn_params + dec_params
    raise TypeError(f"no modular structure is defined for {type(model).__name__}")
