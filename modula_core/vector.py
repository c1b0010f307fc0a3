"""Vector: a flat list of tensors with vector-space arithmetic.

The weights of a module, their gradients and their updates are all Vectors. Arithmetic uses the
fused ``torch._foreach_*`` kernels, so ``weights -= lr * grad`` is one launch per op, not a loop.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import Tensor

Scalar = numbers.Real


class Vector:
    """An ordered list of tensors that behaves like one element of a vector space.

    Supports ``+ - * /`` with scalars and other Vectors (in place and not), unary minus,
    iteration, ``len``, indexing (an int gives a tensor, a slice gives a Vector) and
    concatenation with ``&``.
    """

    def __init__(self, tensors: Iterable[Tensor] = ()):
        self.tensors: list[Tensor] = list(tensors)  # the tensors, in the owning module's order

    # ----------------------------------------------------------------- container protocol
    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Vector(self.tensors[index])
        return self.tensors[index]

    def __setitem__(self, index: int, value: Tensor) -> None:
        self.tensors[index] = value

    def __and__(self, other: "Vector") -> "Vector":
        """Concatenation: ``a & b`` holds a's tensors then b's."""
        if not isinstance(other, Vector):
            return NotImplemented
        return Vector(self.tensors + other.tensors)

    @staticmethod
    def cat(*vectors: "Vector") -> "Vector":
        """Concatenate several Vectors into one."""
        return Vector(t for v in vectors for t in v.tensors)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        return f"Vector([{shapes}])"

    # ----------------------------------------------------------------- arithmetic
    def _check(self, other: "Vector") -> None:
        if len(other) != len(self):
            raise ValueError(
                f"Vector length mismatch: {len(self)} vs {len(other)} tensors; "
                "both operands must come from the same module"
            )

    def _binary(self, other, vec_op, scalar_op):
        if isinstance(other, Vector):
            self._check(other)
            return Vector(vec_op(self.tensors, other.tensors)) if self.tensors else Vector()
        if isinstance(other, Scalar):
            return Vector(scalar_op(self.tensors, float(other))) if self.tensors else Vector()
        return NotImplemented

    def _inplace(self, other, vec_op, scalar_op):
        if isinstance(other, Vector):
            self._check(other)
            if self.tensors:
                vec_op(self.tensors, other.tensors)
            return self
        if isinstance(other, Scalar):
            if self.tensors:
                scalar_op(self.tensors, float(other))
            return self
        return NotImplemented

    def __add__(self, other):
        return self._binary(other, torch._foreach_add, torch._foreach_add)

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, torch._foreach_sub, torch._foreach_sub)

    def __rsub__(self, other):
        if isinstance(other, Scalar):
            return (-self) + other
        return NotImplemented

    def __mul__(self, other):
        return self._binary(other, torch._foreach_mul, torch._foreach_mul)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, torch._foreach_div, torch._foreach_div)

    def __rtruediv__(self, other):
        if isinstance(other, Scalar):
            return Vector(torch._foreach_reciprocal(self.tensors)) * other if self.tensors else Vector()
        return NotImplemented

    def __neg__(self) -> "Vector":
        return Vector(torch._foreach_neg(self.tensors)) if self.tensors else Vector()

    def __pow__(self, exponent):
        if isinstance(exponent, Scalar):
            return Vector(torch._foreach_pow(self.tensors, float(exponent))) if self.tensors else Vector()
        return NotImplemented

    def __iadd__(self, other):
        return self._inplace(other, torch._foreach_add_, torch._foreach_add_)

    def __isub__(self, other):
        return self._inplace(other, torch._foreach_sub_, torch._foreach_sub_)

    def __imul__(self, other):
        return self._inplace(other, torch._foreach_mul_, torch._foreach_mul_)

    def __itruediv__(self, other):
        return self._inplace(other, torch._foreach_div_, torch._foreach_div_)

    def dot(self, other: "Vector") -> Tensor:
        """Euclidean inner product summed over all tensors (a 0-d tensor)."""
        self._check(other)
        if not self.tensors:
            return torch.zeros(())
        return sum((a * b).sum() for a, b in zip(self.tensors, other.tensors))

    def norm(self) -> Tensor:
        """Euclidean (Frobenius) norm of the whole vector (a 0-d tensor)."""
        if not self.tensors:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(self.tensors)))

    # ----------------------------------------------------------------- autograd
    def grad(self) -> "Vector":
        """The gradients of the tensors, zeros where a tensor has none."""
        return Vector(t.grad if t.grad is not None else torch.zeros_like(t) for t in self.tensors)

    def zero_grad(self) -> None:
        """Forget the accumulated gradients (set them to None)."""
        for t in self.tensors:
            t.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> "Vector":
        for t in self.tensors:
            t.requires_grad_(requires_grad)
        return self

    def detach(self) -> "Vector":
        return Vector(t.detach() for t in self.tensors)

    def clone(self) -> "Vector":
        return Vector(t.detach().clone().requires_grad_(t.requires_grad) for t in self.tensors)

    def zeros_like(self) -> "Vector":
        return Vector(torch.zeros_like(t) for t in self.tensors)

    def copy_(self, other: "Vector") -> "Vector":
        """Copy other's values into these tensors in place."""
        self._check(other)
        with torch.no_grad():
            for a, b in zip(self.tensors, other.tensors):
                a.copy_(b)
        return self

    # ----------------------------------------------------------------- devices and dtypes
    def to(self, *args, **kwargs) -> "Vector":
        """Like ``Tensor.to``: move or cast every tensor (leaves stay leaves)."""
        out = []
        for t in self.tensors:
            moved = t.detach().to(*args, **kwargs)
            out.append(moved.requires_grad_(t.requires_grad) if moved.is_floating_point() else moved)
        return Vector(out)

    @property
    def device(self) -> torch.device:
        if not self.tensors:
            raise ValueError("an empty Vector has no device")
        return self.tensors[0].device

    @property
    def dtype(self) -> torch.dtype:
        if not self.tensors:
            raise ValueError("an empty Vector has no dtype")
        return self.tensors[0].dtype

    # ----------------------------------------------------------------- torch.distributed
    def all_reduce(self, average: bool = True, group=None) -> "Vector":
        """Sum (or average) every tensor across the processes of ``group``, in place."""
        import torch.distributed as dist

        for t in self.tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        if average:
            self /= dist.get_world_size(group)
        return self

    def broadcast(self, src: int = 0, group=None) -> "Vector":
        """Overwrite every process's tensors with those of rank ``src``, in place."""
        import torch.distributed as dist

        with torch.no_grad():
            for t in self.tensors:
                dist.broadcast(t, src=src, group=group)
        return self

    # ----------------------------------------------------------------- saving and loading
    def state_dict(self) -> dict[str, Tensor]:
        """A plain ``{"0": tensor, "1": tensor, ...}`` dict, loadable with ``weights_only=True``."""
        return {str(i): t.detach() for i, t in enumerate(self.tensors)}

    def load_state_dict(self, state: dict[str, Tensor]) -> "Vector":
        """Copy saved values into these tensors in place; shapes must match exactly."""
        expected = [str(i) for i in range(len(self.tensors))]
        if sorted(state.keys(), key=lambda k: int(k) if k.isdigit() else -1) != expected:
            raise ValueError(
                f"state dict holds keys {sorted(state.keys())} but this Vector has "
                f"{len(self.tensors)} tensors (keys {expected}); was it saved from another module?"
            )
        with torch.no_grad():
            for i, t in enumerate(self.tensors):
                saved = state[str(i)]
                if saved.shape != t.shape:
                    raise ValueError(
                        f"tensor {i}: saved shape {tuple(saved.shape)} != expected {tuple(t.shape)}; "
                        "the checkpoint comes from a module of another size"
                    )
                t.copy_(saved)
        return self

    def save(self, path: str | Path) -> None:
        """Write the state dict atomically (temporary file, flush, rename): a crash never leaves half a file."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                torch.save(self.state_dict(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def load(path: str | Path, map_location=None) -> "Vector":
        """Load a Vector saved with ``save`` (safe: ``weights_only=True``)."""
        state = torch.load(path, map_location=map_location, weights_only=True)
        return Vector(state[str(i)] for i in range(len(state)))
