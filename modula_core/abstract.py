"""Module algebra: atoms, bonds and the compounds built from them with ``@``, tuples, ``+``, ``*``, ``**``.

Every module carries a mass (its share of feature learning) and a sensitivity (an estimate of its
input Lipschitz constant). Compounds infer both from their children, and split a target norm among
their children so that ``normalize``/``dualize`` set the update's modular norm (see the recursion
rules in the README's "modular norm" section).
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Iterator

import torch
from torch import Tensor

from .checks import check_target
from .vector import Vector


class Module:
    """Base class of every module.

    Subclasses set the number of weight tensors ``length`` and implement ``forward``,
    ``initialize``, ``normalize``, ``dualize``, ``regularize`` and ``norm``.
    """

    children: list["Module"]  # sub-modules, input-to-output order for compositions
    length: int  # number of weight tensors this module owns (its slice of the flat Vector)

    def __init__(self) -> None:
        self.children = []
        self.length = 0

    # ----------------------------------------------------------------- attributes
    @property
    def mass(self) -> float:
        raise NotImplementedError

    @property
    def sensitivity(self) -> float:
        raise NotImplementedError

    def atoms(self) -> Iterator["Module"]:
        """Every distinct module with weights or a mass in this tree (each object once)."""
        seen: set[int] = set()
        stack = [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            if not m.children:
                yield m
            stack.extend(reversed(m.children))

    def tare(self, absolute: float = 1.0) -> "Module":
        """Rescale every mass in this subtree so that the subtree's total mass is ``absolute``."""
        if not isinstance(absolute, numbers.Real) or absolute < 0:
            raise ValueError(f"tare(absolute) needs a real number >= 0, got {absolute!r}")
        current = self.mass
        if current == 0:
            raise ValueError("cannot tare a module of mass 0 (it has no atoms with mass)")
        factor = float(absolute) / current
        for atom in self.atoms():
            if isinstance(atom, Atom):
                atom._mass *= factor
        return self

    def buffers_state_dict(self) -> dict[str, Tensor]:
        """Internal non-weight state of the atoms (e.g. power-iteration warm starts), for checkpoints.

        Keys are ``"<atom index>.<name>"`` in ``atoms()`` order; load with ``load_buffers_state_dict``
        so that a resumed run normalises exactly as an uninterrupted one.
        """
        return {f"{i}.{k}": v for i, atom in enumerate(self.atoms()) for k, v in getattr(atom, "buffers", {}).items()}

    def load_buffers_state_dict(self, state: dict[str, Tensor]) -> None:
        for i, atom in enumerate(self.atoms()):
            prefix = f"{i}."
            if hasattr(atom, "buffers"):
                atom.buffers = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    # ----------------------------------------------------------------- the six methods
    def forward(self, x: Any, w: Vector) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any, w: Vector) -> Any:
        if not isinstance(w, Vector):
            raise TypeError(f"weights must be a modula_core Vector (from .initialize()), got {type(w).__name__}")
        if len(w) != self.length:
            raise ValueError(f"{type(self).__name__} needs {self.length} weight tensors, got {len(w)}")
        return self.forward(x, w)

    def initialize(self, device=None, dtype: torch.dtype | None = None, generator: torch.Generator | None = None) -> Vector:
        """Sample a weight Vector (leaves with ``requires_grad=True``)."""
        raise NotImplementedError

    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        """Scale the update ``w`` in place so that its modular norm is ``target_norm``."""
        raise NotImplementedError

    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        """The update of modular norm ``target_norm`` most aligned with the gradient ``g`` (new Vector)."""
        raise NotImplementedError

    def regularize(self, w: Vector, strength: float) -> None:
        """Shrink the weights ``w`` in place (decoupled weight decay, split by mass)."""
        raise NotImplementedError

    def norm(self, w: Vector) -> float:
        """The modular norm of ``w`` (a weight or an update of this module)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- operator algebra
    def __matmul__(self, other):
        if isinstance(other, tuple):
            other = TupleModule(*other)
        if not isinstance(other, Module):
            return NotImplemented
        return CompositeModule(self, other)

    def __rmatmul__(self, other):
        if isinstance(other, tuple):
            return CompositeModule(TupleModule(*other), self)
        return NotImplemented

    def __add__(self, other):
        from .bond import Add

        if isinstance(other, Module):
            return Add() @ (self, other)
        return NotImplemented

    def __radd__(self, other):
        from .bond import Add

        if isinstance(other, Module):
            return Add() @ (other, self)
        return NotImplemented

    def __rmul__(self, a):
        """``a * M``: scale the output; sensitivity becomes ``|a| * s``."""
        from .bond import Mul

        if not isinstance(a, numbers.Real):
            return NotImplemented
        return Mul(a) @ self

    def __mul__(self, a):
        """``M * a``: scale the input of M."""
        from .bond import Mul

        if not isinstance(a, numbers.Real):
            return NotImplemented
        return self @ Mul(a)

    def __truediv__(self, a):
        if not isinstance(a, numbers.Real):
            return NotImplemented
        if a == 0:
            raise ZeroDivisionError("cannot divide a module by 0")
        return (1.0 / a) * self

    def __pow__(self, depth: int):
        """``M ** L``: L untied copies composed, mass ``L * m``, sensitivity ``s ** L``."""
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
            raise ValueError(f"module ** L needs an integer L >= 1, got {depth!r}")
        result = self
        for _ in range(int(depth) - 1):
            result = copy.deepcopy(self) @ result
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mass={self.mass:g}, sensitivity={self.sensitivity:g})"


class Atom(Module):
    """A module with weights whose mass and sensitivity are declared by hand."""

    def __init__(self, mass: float = 1.0, sensitivity: float = 1.0) -> None:
        super().__init__()
        self._mass: float = float(mass)  # share of feature learning
        self._sensitivity: float = float(sensitivity)  # input Lipschitz estimate
        self.buffers: dict[str, Tensor] = {}  # non-weight state, e.g. power-iteration vectors

    @property
    def mass(self) -> float:
        return self._mass

    @property
    def sensitivity(self) -> float:
        return self._sensitivity

    def regularize(self, w: Vector, strength: float) -> None:
        with torch.no_grad():
            w *= 1.0 - strength


class Bond(Module):
    """A module without weights (mass 0)."""

    def __init__(self, sensitivity: float = 1.0) -> None:
        super().__init__()
        self._sensitivity: float = float(sensitivity)

    @property
    def mass(self) -> float:
        return 0.0

    @property
    def sensitivity(self) -> float:
        return self._sensitivity

    def initialize(self, device=None, dtype=None, generator=None) -> Vector:
        return Vector()

    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        check_target(target_norm)

    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        check_target(target_norm)
        return Vector()

    def regularize(self, w: Vector, strength: float) -> None:
        pass

    def norm(self, w: Vector) -> float:
        return 0.0


class CompositeModule(Module):
    """``m1 @ m0``: run ``m0`` then ``m1``. Weights are ``w0 & w1``."""

    def __init__(self, m1: Module, m0: Module) -> None:
        super().__init__()
        self.children = [m0, m1]
        self.length = m0.length + m1.length

    @property
    def mass(self) -> float:
        return self.children[0].mass + self.children[1].mass

    @property
    def sensitivity(self) -> float:
        return self.children[0].sensitivity * self.children[1].sensitivity

    def _split(self, w: Vector) -> tuple[Vector, Vector]:
        k = self.children[0].length
        return w[:k], w[k:]

    def _targets(self, target_norm: float) -> tuple[float, float]:
        m0, m1 = self.children[0].mass, self.children[1].mass
        m = m0 + m1
        s1 = self.children[1].sensitivity
        return target_norm * m0 / m / s1, target_norm * m1 / m

    def forward(self, x, w: Vector):
        w0, w1 = self._split(w)
        return self.children[1].forward(self.children[0].forward(x, w0), w1)

    def initialize(self, device=None, dtype=None, generator=None) -> Vector:
        return Vector.cat(*(c.initialize(device=device, dtype=dtype, generator=generator) for c in self.children))

    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        target_norm = check_target(target_norm)
        if self.mass == 0:
            with torch.no_grad():
                w *= 0.0
            return
        t0, t1 = self._targets(target_norm)
        w0, w1 = self._split(w)
        self.children[0].normalize(w0, t0)
        self.children[1].normalize(w1, t1)

    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        target_norm = check_target(target_norm)
        if self.mass == 0:
            return g.zeros_like()
        t0, t1 = self._targets(target_norm)
        g0, g1 = self._split(g)
        return self.children[0].dualize(g0, t0) & self.children[1].dualize(g1, t1)

    def regularize(self, w: Vector, strength: float) -> None:
        if self.mass == 0:
            return
        w0, w1 = self._split(w)
        for child, wc in ((self.children[0], w0), (self.children[1], w1)):
            child.regularize(wc, strength * child.mass / self.mass)

    def norm(self, w: Vector) -> float:
        m0, m1 = self.children[0].mass, self.children[1].mass
        m = m0 + m1
        if m == 0:
            return 0.0
        w0, w1 = self._split(w)
        parts = []
        if m0 > 0:
            parts.append(m / m0 * self.children[1].sensitivity * self.children[0].norm(w0))
        if m1 > 0:
            parts.append(m / m1 * self.children[1].norm(w1))
        return max(parts)

    def __repr__(self) -> str:
        return f"({self.children[1]!r} @ {self.children[0]!r})"


class TupleModule(Module):
    """``(m_1, ..., m_k)``: every child gets the same input; the output is the list of outputs."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if not modules:
            raise ValueError("a tuple module needs at least one module")
        flat = [TupleModule(*m) if isinstance(m, tuple) else m for m in modules]
        for m in flat:
            if not isinstance(m, Module):
                raise TypeError(f"tuple entries must be modules, got {type(m).__name__}")
        self.children = flat
        self.length = sum(m.length for m in flat)

    @property
    def mass(self) -> float:
        return sum(c.mass for c in self.children)

    @property
    def sensitivity(self) -> float:
        return sum(c.sensitivity for c in self.children)

    def _split(self, w: Vector) -> list[Vector]:
        out, start = [], 0
        for c in self.children:
            out.append(w[start : start + c.length])
            start += c.length
        return out

    def forward(self, x, w: Vector):
        return [c.forward(x, wc) for c, wc in zip(self.children, self._split(w))]

    def initialize(self, device=None, dtype=None, generator=None) -> Vector:
        return Vector.cat(*(c.initialize(device=device, dtype=dtype, generator=generator) for c in self.children))

    def normalize(self, w: Vector, target_norm: float = 1.0) -> None:
        target_norm = check_target(target_norm)
        if self.mass == 0:
            with torch.no_grad():
                w *= 0.0
            return
        for c, wc in zip(self.children, self._split(w)):
            c.normalize(wc, target_norm * c.mass / self.mass)

    def dualize(self, g: Vector, target_norm: float = 1.0) -> Vector:
        target_norm = check_target(target_norm)
        if self.mass == 0:
            return g.zeros_like()
        return Vector.cat(*(c.dualize(gc, target_norm * c.mass / self.mass) for c, gc in zip(self.children, self._split(g))))

    def regularize(self, w: Vector, strength: float) -> None:
        if self.mass == 0:
            return
        for c, wc in zip(self.children, self._split(w)):
            c.regularize(wc, strength * c.mass / self.mass)

    def norm(self, w: Vector) -> float:
        if self.mass == 0:
            return 0.0
        return max(
            (self.mass / c.mass * c.norm(wc) for c, wc in zip(self.children, self._split(w)) if c.mass > 0),
            default=0.0,
        )

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(c) for c in self.children) + ")"
