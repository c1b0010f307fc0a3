"""Models: the multi-layer Elman RNN and the three task heads of the paper."""

from .adding import AddingRNN
from .base import RecurrentModel
from .elman_stack import ElmanStack
from .language_model import RNNLanguageModel
from .path_integration import PathIntegrationRNN

__all__ = ["AddingRNN", "ElmanStack", "PathIntegrationRNN", "RNNLanguageModel", "RecurrentModel"]
