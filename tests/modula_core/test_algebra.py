"""Property-based tests of the module algebra on random compounds.

Random trees of Linear atoms (random masses, including 0), bonds, scalar multiples (negative ones
included), tuples with Add, sums, powers and tares are built twice: as modules, and as a plain
nested-tuple "spec" that an independent recursion in this file evaluates (mass, sensitivity,
forward pass, modular norm via ``torch.linalg.svdvals``, per-atom regularisation strength).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modula_core import Vector
from modula_core.abstract import Module
from modula_core.atom import Linear
from modula_core.bond import GELU, Abs, Add, Identity, Mul, ReLU, ScaledReLU, Tanh
from modula_core.linalg import NS_COEFFICIENTS

torch.set_num_threads(1)

N = 4  # every random module maps (B, N) -> (B, N)
POWER_STEPS = 100  # enough power iterations that spectral normalisation is exact to float precision

BONDS = {
    "relu": (ReLU, 1 / math.sqrt(2), torch.relu),
    "gelu": (GELU, 1 / math.sqrt(2), torch.nn.functional.gelu),
    "scaledrelu": (ScaledReLU, 1.0, lambda x: math.sqrt(2) * torch.relu(x)),
    "tanh": (Tanh, 1.0, torch.tanh),
    "abs": (Abs, 1.0, torch.abs),
    "identity": (Identity, 1.0, lambda x: x),
}

# ----------------------------------------------------------------------------- strategies
scalars = st.floats(min_value=0.2, max_value=3.0, allow_nan=False).flatmap(lambda v: st.sampled_from([v, -v]))
linear_leaves = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]).map(lambda m: ("linear", m))
bond_leaves = st.sampled_from(sorted(BONDS)).map(lambda k: ("bond", k))
leaves = st.integers(0, 3).flatmap(lambda i: bond_leaves if i == 0 else linear_leaves)  # 3:1 for Linear


def _extend(children):
    return st.one_of(
        st.tuples(st.just("compose"), children, children),
        st.tuples(st.just("sum"), children, children),
        st.tuples(st.just("tuple_add"), st.lists(children, min_size=1, max_size=3).map(tuple)),
        st.tuples(st.just("scale"), scalars, children),
        st.tuples(st.just("rscale"), scalars, children),
        st.tuples(st.just("div"), scalars, children),
        st.tuples(st.just("pow"), st.integers(1, 3), children),
        st.tuples(st.just("tare"), st.floats(min_value=0.25, max_value=4.0), children),
    )


def _num_atoms(spec) -> int:
    kind = spec[0]
    if kind == "linear":
        return 1
    if kind == "bond":
        return 0
    if kind in ("compose", "sum"):
        return _num_atoms(spec[1]) + _num_atoms(spec[2])
    if kind == "tuple_add":
        return sum(_num_atoms(c) for c in spec[1])
    if kind == "pow":
        return spec[1] * _num_atoms(spec[2])
    return _num_atoms(spec[2])


specs = st.recursive(leaves, _extend, max_leaves=10).filter(lambda s: _num_atoms(s) <= 20)


# ----------------------------------------------------------------------------- build modules from a spec
def build(spec, schedule: str = "tuned6") -> Module:
    kind = spec[0]
    if kind == "linear":
        return Linear(N, N, mass=spec[1], power_steps=POWER_STEPS, schedule=schedule)
    if kind == "bond":
        return BONDS[spec[1]][0]()
    if kind == "compose":
        return build(spec[1], schedule) @ build(spec[2], schedule)
    if kind == "sum":
        return build(spec[1], schedule) + build(spec[2], schedule)
    if kind == "tuple_add":
        return Add() @ tuple(build(c, schedule) for c in spec[1])
    if kind == "scale":
        return spec[1] * build(spec[2], schedule)
    if kind == "rscale":
        return build(spec[2], schedule) * spec[1]
    if kind == "div":
        return build(spec[2], schedule) / spec[1]
    if kind == "pow":
        return build(spec[2], schedule) ** spec[1]
    if kind == "tare":
        m = build(spec[2], schedule)
        if mass(spec[2]) > 0:
            m.tare(spec[1])
        return m
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- the independent recursion
def _expand_pow(spec):
    k, c = spec[1], spec[2]
    out = c
    for _ in range(k - 1):
        out = ("compose", c, out)
    return out


def mass(spec) -> float:
    kind = spec[0]
    if kind == "linear":
        return spec[1]
    if kind == "bond":
        return 0.0
    if kind in ("compose", "sum"):
        return mass(spec[1]) + mass(spec[2])
    if kind == "tuple_add":
        return sum(mass(c) for c in spec[1])
    if kind == "pow":
        return spec[1] * mass(spec[2])
    if kind == "tare":
        return spec[1] if mass(spec[2]) > 0 else 0.0
    return mass(spec[2])  # scale, rscale, div


def sensitivity(spec) -> float:
    kind = spec[0]
    if kind == "linear":
        return 1.0
    if kind == "bond":
        return BONDS[spec[1]][1]
    if kind == "compose":
        return sensitivity(spec[1]) * sensitivity(spec[2])
    if kind == "sum":
        return sensitivity(spec[1]) + sensitivity(spec[2])
    if kind == "tuple_add":
        return sum(sensitivity(c) for c in spec[1])
    if kind in ("scale", "rscale"):
        return abs(spec[1]) * sensitivity(spec[2])
    if kind == "div":
        return sensitivity(spec[2]) / abs(spec[1])
    if kind == "pow":
        return sensitivity(spec[2]) ** spec[1]
    return sensitivity(spec[2])  # tare


def forward(spec, x: torch.Tensor, it) -> torch.Tensor:
    kind = spec[0]
    if kind == "linear":
        return x @ next(it).T  # sqrt(N / N) = 1
    if kind == "bond":
        return BONDS[spec[1]][2](x)
    if kind == "compose":
        return forward(spec[1], forward(spec[2], x, it), it)
    if kind == "sum":
        return forward(spec[1], x, it) + forward(spec[2], x, it)
    if kind == "tuple_add":
        return sum(forward(c, x, it) for c in spec[1])
    if kind == "scale":
        return spec[1] * forward(spec[2], x, it)
    if kind == "rscale":
        return forward(spec[2], spec[1] * x, it)
    if kind == "div":
        return forward(spec[2], x, it) / spec[1]
    if kind == "pow":
        return forward(_expand_pow(spec), x, it)
    return forward(spec[2], x, it)  # tare


def _tuple_norm(children, it) -> float:
    norms = [(mass(c), norm(c, it)) for c in children]
    total = sum(m for m, _ in norms)
    return max((total / m * n for m, n in norms if m > 0), default=0.0)


def norm(spec, it) -> float:
    """The modular norm of the tensors drawn from ``it``, with the exact spectral norm for Linear."""
    kind = spec[0]
    if kind == "linear":
        return torch.linalg.svdvals(next(it).double())[0].item()
    if kind == "bond":
        return 0.0
    if kind == "compose":
        s1, s0 = spec[1], spec[2]
        n0, n1 = norm(s0, it), norm(s1, it)
        m0, m1 = mass(s0), mass(s1)
        m = m0 + m1
        parts = ([m / m0 * sensitivity(s1) * n0] if m0 > 0 else []) + ([m / m1 * n1] if m1 > 0 else [])
        return max(parts, default=0.0)
    if kind == "sum":
        return _tuple_norm([spec[1], spec[2]], it)
    if kind == "tuple_add":
        return _tuple_norm(spec[1], it)
    if kind == "scale":
        return abs(spec[1]) * norm(spec[2], it)
    if kind == "div":
        return norm(spec[2], it) / abs(spec[1])
    if kind == "pow":
        return norm(_expand_pow(spec), it)
    return norm(spec[2], it)  # rscale, tare: masses scale uniformly, ratios unchanged


def atom_masses(spec, factor: float = 1.0) -> list[float]:
    """Effective mass of every Linear atom, in weight order (tare rescales a whole subtree)."""
    kind = spec[0]
    if kind == "linear":
        return [factor * spec[1]]
    if kind == "bond":
        return []
    if kind == "compose":
        return atom_masses(spec[2], factor) + atom_masses(spec[1], factor)
    if kind == "sum":
        return atom_masses(spec[1], factor) + atom_masses(spec[2], factor)
    if kind == "tuple_add":
        return [m for c in spec[1] for m in atom_masses(c, factor)]
    if kind == "pow":
        return atom_masses(_expand_pow(spec), factor)
    if kind == "tare":
        inner = mass(spec[2])
        return atom_masses(spec[2], factor * spec[1] / inner if inner > 0 else factor)
    return atom_masses(spec[2], factor)


def _random_update(n_atoms: int, seed: int, spiked: bool) -> Vector:
    """Gaussian matrices; ``spiked`` adds a dominant rank-one part so power iteration converges fast."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_atoms):
        w = torch.randn(N, N, generator=g)
        if spiked:
            a, b = torch.randn(N, 1, generator=g), torch.randn(1, N, generator=g)
            w = w + 3.0 * a @ b
        out.append(w)
    return Vector(out)


def _ns_bounds(schedule: str, lowest_top: float) -> tuple[float, float]:
    """[min, max] of the schedule's composed polynomial: min over [lowest_top, 1], max over [0, 1]."""
    x = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    y = x.clone()
    for a, b, c in NS_COEFFICIENTS[schedule]:
        y = a * y + b * y**3 + c * y**5
    return y[x >= lowest_top].min().item(), y.max().item()


SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- properties
@SETTINGS
@given(spec=specs)
def test_mass_and_sensitivity_match_the_independent_recursion(spec) -> None:
    m = build(spec)
    assert m.mass == pytest.approx(mass(spec), rel=1e-12, abs=1e-12)
    assert m.sensitivity == pytest.approx(sensitivity(spec), rel=1e-12)
    assert m.length == _num_atoms(spec)


@SETTINGS
@given(spec=specs, seed=st.integers(0, 2**31 - 1))
def test_forward_matches_the_independent_recursion(spec, seed) -> None:
    m = build(spec)
    g = torch.Generator().manual_seed(seed)
    w = m.initialize(generator=g, dtype=torch.float64)
    x = torch.randn(3, N, generator=g, dtype=torch.float64)
    with torch.no_grad():
        expected = forward(spec, x, iter(w))
        torch.testing.assert_close(m(x, w), expected)


@SETTINGS
@given(spec=specs, seed=st.integers(0, 2**31 - 1), target=st.floats(min_value=0.01, max_value=10.0))
def test_normalize_sets_the_modular_norm(spec, seed, target) -> None:
    m = build(spec)
    update = _random_update(m.length, seed, spiked=True)
    m.normalize(update, target_norm=target)
    if mass(spec) == 0:
        assert all(torch.count_nonzero(t) == 0 for t in update)
        assert m.norm(update) == 0.0
        return
    assert norm(spec, iter(update)) == pytest.approx(target, rel=1e-4)
    assert m.norm(update) == pytest.approx(target, rel=1e-4)
    # atoms of zero effective mass get a zero update
    for t, am in zip(update, atom_masses(spec)):
        if am == 0:
            assert torch.count_nonzero(t) == 0


@SETTINGS
@given(
    spec=specs,
    seed=st.integers(0, 2**31 - 1),
    target=st.floats(min_value=0.01, max_value=10.0),
    schedule=st.sampled_from(sorted(NS_COEFFICIENTS)),
)
def test_dualize_sets_the_modular_norm_and_descends(spec, seed, target, schedule) -> None:
    m = build(spec, schedule)
    grad = _random_update(m.length, seed, spiked=False)
    before = [t.clone() for t in grad]
    update = m.dualize(grad, target_norm=target)
    assert isinstance(update, Vector) and len(update) == len(grad)
    assert all(torch.equal(a, b) for a, b in zip(grad, before))  # dualize returns a new Vector
    if mass(spec) == 0:
        assert all(torch.count_nonzero(t) == 0 for t in update)
        return
    # each N x N matrix has top singular value >= ||G||_F / sqrt(N): Newton–Schulz maps it into [lo, hi]
    lo, hi = _ns_bounds(schedule, 1 / math.sqrt(N))
    value = norm(spec, iter(update))
    assert target * lo * (1 - 1e-4) <= value <= target * hi * (1 + 1e-4)
    assert m.norm(update) == pytest.approx(value, rel=1e-9)
    # the update is aligned with the gradient (negative scalars do not flip it)
    assert update.dot(grad).item() > 0


@SETTINGS
@given(spec=specs, seed=st.integers(0, 2**31 - 1), strength=st.floats(min_value=0.0, max_value=0.5))
def test_regularize_splits_the_strength_by_mass(spec, seed, strength) -> None:
    m = build(spec)
    w = _random_update(m.length, seed, spiked=False)
    before = [t.clone() for t in w]
    m.regularize(w, strength)
    total = mass(spec)
    for t, t0, am in zip(w, before, atom_masses(spec)):
        factor = 1.0 - strength * am / total if total > 0 else 1.0
        torch.testing.assert_close(t, t0 * factor)


# ----------------------------------------------------------------------------- fixed cases
def test_negative_scalar_uses_its_absolute_value() -> None:
    g = Vector([torch.randn(N, N, generator=torch.Generator().manual_seed(0))])
    pos, neg = 2.0 * Linear(N, N), -2.0 * Linear(N, N)
    assert neg.sensitivity == pos.sensitivity == 2.0
    up_pos, up_neg = pos.dualize(g, 1.0), neg.dualize(g, 1.0)
    torch.testing.assert_close(up_neg[0], up_pos[0])
    assert up_neg.dot(g).item() > 0
    # Linear's target is 1 / |a|
    assert torch.linalg.svdvals(up_neg[0])[0].item() == pytest.approx(0.5, rel=5e-3)


@pytest.mark.parametrize("make", [lambda m: 0 * m, lambda m: m * 0, lambda m: 0.0 * m])
def test_scaling_by_zero_raises(make) -> None:
    with pytest.raises(ValueError, match="cannot scale a module by 0"):
        make(Linear(3, 3))


def test_bad_scalars_and_powers_raise() -> None:
    with pytest.raises(ValueError, match="cannot scale a module by"):
        Mul(float("nan"))
    with pytest.raises(ValueError, match="cannot scale a module by"):
        Mul("2")  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError):
        Linear(3, 3) / 0
    with pytest.raises(ValueError, match="integer L >= 1"):
        Linear(3, 3) ** 0
    with pytest.raises(ValueError, match="integer L >= 1"):
        Linear(3, 3) ** 1.5
    with pytest.raises(ValueError, match="mass 0"):
        (ReLU() @ Identity()).tare(2.0)


def test_call_checks_the_weight_vector() -> None:
    m = Linear(3, 4) @ ReLU() @ Linear(4, 2)
    w = m.initialize()
    with pytest.raises(ValueError, match="needs 2 weight tensors, got 1"):
        m(torch.randn(2), w[:1])
    with pytest.raises(TypeError, match="Vector"):
        m(torch.randn(2), list(w))


def test_power_makes_untied_copies() -> None:
    block = Linear(N, N) @ ReLU()
    deep = block**3
    assert deep.mass == 3 and deep.length == 3
    assert deep.sensitivity == pytest.approx((1 / math.sqrt(2)) ** 3)
    atoms = [a for a in deep.atoms() if isinstance(a, Linear)]
    assert len({id(a) for a in atoms}) == 3


def test_residual_idiom_keeps_sensitivity_one() -> None:
    for depth in (2, 3, 8):
        block = Linear(N, N)
        res = ((1 - 1 / depth) * Identity() + 1 / depth * block) ** depth
        assert res.sensitivity == pytest.approx(1.0, rel=1e-12)
        assert res.mass == depth


def test_tuple_output_and_tare_keep_relative_masses() -> None:
    a, b = Linear(N, N, mass=1.0), Linear(N, N, mass=3.0)
    pair = Add() @ (a, b)
    pair.tare(2.0)
    assert (a.mass, b.mass) == pytest.approx((0.5, 1.5))
    x = torch.randn(2, N)
    w = pair.initialize()
    with torch.no_grad():
        torch.testing.assert_close(pair(x, w), x @ w[0].T + x @ w[1].T)
