"""Inhibitors: elementwise functions f of neuron distance giving penalty coefficients."""

from .base import Inhibitor
from .constant import Constant
from .diffusion import Diffusion
from .dog import DoG
from .gaussian import Gaussian
from .identity import Identity
from .registry import INHIBITORS, get_inhibitor, inhibitor_from_config
from .ripple import Ripple

__all__ = [
    "Inhibitor",
    "DoG",
    "Diffusion",
    "Ripple",
    "Gaussian",
    "Identity",
    "Constant",
    "INHIBITORS",
    "get_inhibitor",
    "inhibitor_from_config",
]
