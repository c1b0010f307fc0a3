"""The moduli regulariser: R(W) = strength * reduce_jk( f(d_M(i(j), i(k))) * |w_jk|^l ).

Hidden neuron j sits at point i(j) of a manifold M; the inhibitor f turns the (N, N) geodesic
distance matrix into a coefficient matrix C = f(D); the penalty weights each recurrent
connection k -> j (entry w_jk of W_hh) by C[j, k]. With a fixed embedding C is computed once and
cached; with a learned embedding (a ``geoopt.ManifoldParameter``) the penalty is recomputed every
call so that gradients reach the neuron positions, by the fused kernel of
:mod:`moduli.fused_penalty` (closed-form gradients in row blocks, no N x N state kept) unless
``penalty_path`` asks for the autograd path through C.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from .fused_penalty import fused_penalty
from .inhibitors import Constant, DoG, Inhibitor
from .manifolds import Manifold, Torus

REDUCTIONS = ("mean", "sum")
MEAN_MATCHED_RULES = ("plain_dog", "applied")  # what the mean-matched L1 constant is the mean of
PENALTY_PATHS = ("auto", "compiled", "fused", "autograd")  # how a learned embedding's penalty is computed
COMPILE_MIN_NEURONS = 512  # "auto" compiles the fused kernel (CPU) from this many neurons on


def _inverse(permutation: Tensor) -> Tensor:
    """The inverse of a permutation of range(len(permutation)), in O(len)."""
    inverse = torch.empty_like(permutation)
    inverse[permutation] = torch.arange(len(permutation), device=permutation.device)
    return inverse


class ModuliRegularizer(nn.Module):
    """Geometric penalty on an (N, N) recurrent weight matrix.

    Args:
        manifold: the space the N neurons live on.
        num_neurons: N, the hidden size of the layer the penalty is applied to.
        inhibitor: f, applied elementwise to the distance matrix.
        exponent: l in |w|^l (1 or 2).
        strength: overall multiplier (>= 0).
        reduction: "mean" over the N^2 entries (the research code's choice) or "sum".
        learn_embedding: make the neuron positions a ``geoopt.ManifoldParameter``.
        permute: the permuted control; the N^2 coefficient entries are shuffled once (with
            ``generator``), keeping their distribution and destroying the geometry.
        invert: use ``max C - C`` with C = f(D) and the maximum over the whole (N, N) matrix
            (the research code's ``--invert``; recomputed with C for learned positions).
        generator: seeds the random embedding and the permutation.
        points: (N, coord_dim) neuron positions; random points of ``manifold`` when omitted.
    """

    manifold: Manifold  # the moduli space
    inhibitor: Inhibitor  # f: distance -> coefficient
    num_neurons: int  # N
    exponent: int  # l
    strength: float  # multiplier of the reduced penalty
    reduction: str  # "mean" | "sum"
    learn_embedding: bool  # positions trained (ManifoldParameter) or fixed (buffer)
    permute: bool  # coefficients shuffled once (control)
    invert: bool  # coefficients max C - C
    # Learned embeddings: "fused" (closed-form kernel in row blocks), "compiled" (the same through
    # torch.compile), "autograd" (through the N x N coefficient matrix, the reference), or "auto":
    # compiled on CPU from COMPILE_MIN_NEURONS neurons on (compiling takes tens of seconds once per
    # process), fused otherwise. Set it on the class or on one instance.
    penalty_path: str = "auto"

    def __init__(
        self,
        manifold: Manifold,
        num_neurons: int,
        inhibitor: Inhibitor,
        exponent: int = 1,
        strength: float = 0.1,
        reduction: str = "mean",
        learn_embedding: bool = False,
        permute: bool = False,
        generator: torch.Generator | None = None,
        points: Tensor | None = None,
        invert: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(manifold, Manifold):
            raise TypeError(f"manifold must be a moduli Manifold (e.g. Torus()), got {type(manifold).__name__}")
        if not isinstance(inhibitor, Inhibitor):
            raise TypeError(f"inhibitor must be a moduli Inhibitor (e.g. DoG()), got {type(inhibitor).__name__}")
        if isinstance(num_neurons, bool) or not isinstance(num_neurons, numbers.Integral) or num_neurons < 1:
            raise ValueError(f"num_neurons must be a positive int (the layer's hidden size), got {num_neurons!r}")
        if exponent not in (1, 2) or isinstance(exponent, bool):
            raise ValueError(f"exponent must be 1 or 2, got {exponent!r}")
        if (
            isinstance(strength, bool)
            or not isinstance(strength, numbers.Real)
            or not (math.isfinite(strength) and strength >= 0)
        ):
            raise ValueError(f"strength must be a finite real number >= 0, got {strength!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if invert and isinstance(inhibitor, Constant):
            raise ValueError("invert=True on a Constant inhibitor gives an all-zero penalty; use invert=False")
        self.manifold = manifold
        self.inhibitor = inhibitor
        self.num_neurons = int(num_neurons)
        self.exponent = int(exponent)
        self.strength = float(strength)
        self.reduction = reduction
        self.learn_embedding = bool(learn_embedding)
        self.permute = bool(permute)
        self.invert = bool(invert)

        if points is None:
            points = manifold.random(self.num_neurons, generator=generator)
        else:
            manifold.check_points(points, "embedding points")
            if points.dim() != 2 or points.shape[0] != self.num_neurons:
                raise ValueError(
                    f"embedding points must have shape ({self.num_neurons}, {manifold.coord_dim}) "
                    f"for {self.num_neurons} neurons on {manifold!r}, got {tuple(points.shape)}"
                )
            points = manifold.project(points.detach()).clone()

        if self.learn_embedding:
            self.embedding = manifold.parameter(points)
        else:
            self.register_buffer("embedding", points)

        if self.permute:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            perm = torch.randperm(self.num_neurons**2, generator=generator, device=gen_device)
            self.register_buffer("permutation", perm.to(points.device))
            # the fused penalty un-permutes the weights instead: W'[p] = W[q] where permutation[q] = p
            self.register_buffer("_inverse_permutation", _inverse(self.permutation), persistent=False)
        else:
            self.permutation = None

        # Fixed embeddings: the coefficient matrix is the only N x N state kept.
        if self.learn_embedding:
            self._cached = None
        else:
            self.register_buffer("_cached", self._compute_coefficients().detach(), persistent=False)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_embedding(cls, manifold: Manifold, points: Tensor, inhibitor: Inhibitor, **kwargs) -> "ModuliRegularizer":
        """A regulariser on given neuron positions ``points`` (N, coord_dim)."""
        if not isinstance(points, Tensor) or points.dim() != 2:
            raise ValueError(f"points must be an (N, coord_dim) tensor, got {getattr(points, 'shape', type(points))}")
        return cls(manifold, points.shape[0], inhibitor, points=points, **kwargs)

    @classmethod
    def l1(cls, num_neurons: int, strength: float = 0.1, **kwargs) -> "ModuliRegularizer":
        """The plain L1 control: every coefficient is 1."""
        return cls(Torus(), num_neurons, Constant(1.0), strength=strength, **kwargs)

    @classmethod
    def mean_matched_l1(
        cls,
        num_neurons: int,
        strength: float = 0.1,
        reference_manifold: Manifold | None = None,
        reference_inhibitor: Inhibitor | None = None,
        generator: torch.Generator | None = None,
        rule: str = "applied",
        **kwargs,
    ) -> "ModuliRegularizer":
        """The mean-matched L1 control: every coefficient equals the mean over the N^2 entries of
        a random embedding (``reference_manifold``, 2-torus by default, drawn with ``generator``).

        ``rule="applied"``: the mean of ``reference_inhibitor`` (inverted DoG by default), the
        coefficients a moduli penalty applies (about 66.3 on the 2-torus). ``rule="plain_dog"``:
        the mean of the plain, non-inverted DoG term ``reference_inhibitor.plain`` (the research
        code's ``--regpower mean``); on the 2-torus of period 10 its expectation is
        14.873 (N - 1) / N (the diagonal is 0), with a standard deviation over draws of about
        0.21 at N = 128 and 0.02 at N = 1024.
        """
        if rule not in MEAN_MATCHED_RULES:
            raise ValueError(f"rule must be one of {MEAN_MATCHED_RULES}, got {rule!r}")
        reference_manifold = reference_manifold or Torus()
        reference_inhibitor = reference_inhibitor or DoG()
        if rule == "plain_dog" and not isinstance(reference_inhibitor, DoG):
            raise ValueError(f"rule 'plain_dog' needs a DoG reference inhibitor, got {reference_inhibitor!r}")
        points = reference_manifold.random(num_neurons, generator=generator)
        distances = reference_manifold.pairwise_distance(points)
        values = reference_inhibitor.plain(distances) if rule == "plain_dog" else reference_inhibitor(distances)
        mean = float(values.mean())
        return cls(Torus(), num_neurons, Constant(mean), strength=strength, generator=generator, **kwargs)

    # ----------------------------------------------------------------- coefficients
    def distances(self) -> Tensor:
        """(N, N) geodesic distances between the neurons' positions."""
        return self.manifold.pairwise_distance(self.embedding)

    def _compute_coefficients(self) -> Tensor:
        if isinstance(self.inhibitor, Constant):
            n = self.num_neurons
            c = self.embedding.new_full((n, n), float(self.inhibitor.value))
        else:
            c = self.inhibitor(self.distances())
            if self.invert:
                c = c.max() - c
        if self.permutation is not None:
            c = c.reshape(-1)[self.permutation].reshape(c.shape)
        return c

    def frozen(self) -> "ModuliRegularizer":
        """A regulariser with this one's current positions as a fixed embedding, the same
        permutation and settings: the same coefficients, no longer learned (e.g. for a lottery
        model that keeps the trained model's embedding)."""
        copy = type(self)(
            self.manifold, self.num_neurons, self.inhibitor, exponent=self.exponent, strength=self.strength,
            reduction=self.reduction, points=self.embedding.detach(), invert=self.invert,
        )
        if self.permutation is not None:
            copy.permute = True
            del copy.permutation  # the plain None attribute of an unpermuted regulariser
            copy.register_buffer("permutation", self.permutation.clone())
            copy._cached = copy._compute_coefficients().detach()
        return copy.to(self.embedding.device)

    def coefficients(self) -> Tensor:
        """(N, N) coefficient matrix f(D) (permuted for the control); differentiable when learned."""
        if self._cached is not None:
            return self._cached
        return self._compute_coefficients()

    # ----------------------------------------------------------------- penalty
    def forward(self, weight: Tensor) -> Tensor:
        """Penalty of an (N, N) recurrent weight matrix; a 0-d tensor.

        Learned embeddings go through the fused kernel (see ``penalty_path``); fixed ones use the
        cached coefficient matrix.
        """
        self._check_weight(weight)
        path = self._penalty_path()
        if path == "autograd":
            return self.autograd_penalty(weight)
        n = self.num_neurons
        if self.permutation is not None:
            weight = weight.reshape(-1)[self._inverse_permutation].reshape(n, n)
        scale = self.strength / (n * n) if self.reduction == "mean" else self.strength
        return fused_penalty(
            self.manifold, self.inhibitor, self.embedding, weight, self.exponent, scale, compiled=path == "compiled"
        )

    def _penalty_path(self) -> str:
        """The path ``forward`` takes: "autograd" for fixed embeddings and constant inhibitors."""
        if self.penalty_path not in PENALTY_PATHS:
            raise ValueError(f"penalty_path must be one of {PENALTY_PATHS}, got {self.penalty_path!r}")
        if not self.learn_embedding or isinstance(self.inhibitor, Constant):
            return "autograd"  # cached coefficients, or no gradient to the positions at all
        if self.invert:
            return "autograd"  # max C - C: the maximum over all pairs couples every entry
        if self.penalty_path != "auto":
            return self.penalty_path
        big = self.num_neurons >= COMPILE_MIN_NEURONS
        return "compiled" if big and self.embedding.device.type == "cpu" else "fused"

    def _check_weight(self, weight: Tensor) -> None:
        n = self.num_neurons
        if isinstance(weight, torch.nn.Module):
            names = [name for name, _ in weight.named_parameters() if name.startswith("weight")]
            example = f"layer.{names[-1]}" if names else "layer.weight"
            raise TypeError(
                f"the regulariser takes the ({n}, {n}) recurrent weight tensor, not a module ({type(weight).__name__}); "
                f"pass the tensor, e.g. reg({example})"
            )
        if not isinstance(weight, Tensor):
            fix = "convert it with torch.from_numpy(w)" if type(weight).__module__.startswith("numpy") else "pass a torch.Tensor"
            raise TypeError(
                f"the regulariser needs the ({n}, {n}) recurrent weight as a torch.Tensor, got a "
                f"{type(weight).__module__}.{type(weight).__name__}; {fix}"
            )
        if weight.device != self.embedding.device:
            raise ValueError(
                f"the weight matrix is on {weight.device} but the regulariser is on {self.embedding.device}; move "
                f"the regulariser with reg.to(weight.device) (a model moves its regularisers with model.to(device))"
            )
        if weight.shape != (n, n):
            raise ValueError(
                f"the regulariser was built for {n} neurons and needs an ({n}, {n}) weight matrix, "
                f"got {tuple(getattr(weight, 'shape', ()))}; build it with num_neurons equal to the hidden size"
            )
        if not weight.is_floating_point():
            raise TypeError(f"the weight matrix must have a floating dtype, got {weight.dtype}; convert with .float()")

    def autograd_penalty(self, weight: Tensor) -> Tensor:
        """The penalty through the (N, N) coefficient matrix, differentiated by autograd.

        What ``forward`` computes for fixed embeddings; for learned ones the reference of the
        fused kernel (equal up to rounding, slower, N x N intermediates kept for the backward).
        """
        self._check_weight(weight)
        n = self.num_neurons
        magnitude = weight.abs() if self.exponent == 1 else weight.square()
        coefficients = self.coefficients().to(dtype=weight.dtype)
        # A dot product of the flattened matrices: no N x N product temporary.
        total = torch.dot(coefficients.reshape(-1), magnitude.reshape(-1))
        if self.reduction == "mean":
            total = total / (n * n)
        return self.strength * total

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.permutation is not None and "_inverse_permutation" in self._buffers:
            self._inverse_permutation = _inverse(self.permutation)
        if not self.learn_embedding:
            with torch.no_grad():
                self._cached = self._compute_coefficients().detach()

    def extra_repr(self) -> str:
        return (
            f"manifold={self.manifold!r}, num_neurons={self.num_neurons}, inhibitor={self.inhibitor!r}, "
            f"exponent={self.exponent}, strength={self.strength:g}, reduction={self.reduction!r}, "
            f"learn_embedding={self.learn_embedding}, permute={self.permute}, invert={self.invert}"
        )
