"""Models: the multi-layer Elman RNN and the task heads."""

from .adding import AddingRNN, LastStateRNN
from .base import RecurrentModel
from .elman_stack import ElmanStack
from .language_model import RNNLanguageModel
from .path_integration import PathIntegrationRNN
from .stacked import stacked_elman

__all__ = [
    "AddingRNN", "ElmanStack", "LastStateRNN", "PathIntegrationRNN", "RNNLanguageModel", "RecurrentModel", "stacked_elman",
]
