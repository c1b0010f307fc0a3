"""modula_core: a modular-norm engine in PyTorch, with weight-tied recurrence."""

from .abstract import Atom, Bond, CompositeModule, Module, TupleModule
from .vector import Vector

__all__ = ["Atom", "Bond", "CompositeModule", "Module", "TupleModule", "Vector"]
