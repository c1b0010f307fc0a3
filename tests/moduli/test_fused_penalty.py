"""Tests of the fused learned-embedding penalty (moduli.fused_penalty): value and both gradients
against the autograd path through the coefficient matrix for every manifold x inhibitor, at the
seams of the torus and the Klein bottle, at antipodes and coincident points, gradcheck, the
closed forms of the manifolds and inhibitors against their autograd defaults, the row blocks, the
compiled kernel, no (N, N, coord_dim) temporaries, and the regulariser's public behaviour."""

from __future__ import annotations

import itertools
import shutil
import warnings

import geoopt
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import moduli.fused_penalty as fused
from moduli.fused_penalty import fused_penalty
from moduli.inhibitors import INHIBITORS, Constant, DoG, Gaussian, Identity, Inhibitor, get_inhibitor
from moduli.manifolds import MANIFOLDS, Circle, KleinBottle, Manifold, Product, Sphere, Torus, get_manifold
from moduli.regularizer import ModuliRegularizer

torch.set_num_threads(1)

MANIFOLD_NAMES = [m for m in MANIFOLDS if m != "euclidean"]  # "euclidean" needs dim: r3 / r9 cover it


def _inhibitor(name: str) -> Inhibitor:
    return get_inhibitor(name, value=3.0) if name == "constant" else get_inhibitor(name)


def _reference(reg: ModuliRegularizer, weight: torch.Tensor):
    """Value, dP/dW and dP/dpositions through the autograd path (zeros where no gradient flows)."""
    w = weight.detach().clone().requires_grad_(True)
    reg.embedding.grad = None
    value = reg.autograd_penalty(w)
    value.backward()
    grad_x = reg.embedding.grad if reg.embedding.grad is not None else torch.zeros_like(reg.embedding)
    return value.detach(), w.grad.clone(), grad_x.clone()


def _fused(reg: ModuliRegularizer, weight: torch.Tensor, compiled: bool = False):
    """The same through fused_penalty called directly (also for Constant, which forward does not route here)."""
    w = weight.detach().clone().requires_grad_(True)
    reg.embedding.grad = None
    n = reg.num_neurons
    w_used = w if reg.permutation is None else w.reshape(-1)[reg._inverse_permutation].reshape(n, n)
    scale = reg.strength / n**2 if reg.reduction == "mean" else reg.strength
    value = fused_penalty(reg.manifold, reg.inhibitor, reg.embedding, w_used, reg.exponent, scale, compiled)
    value.backward()
    return value.detach(), w.grad.clone(), reg.embedding.grad.clone()


def _assert_same(got, want, rtol=1e-5, what=""):
    for name, a, b in zip(("value", "dP/dW", "dP/dx"), got, want):
        scale = float(b.abs().max()) if b.numel() else 0.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * max(scale, 1e-12), msg=lambda m: f"{what} {name}: {m}")


def _learned(manifold: Manifold, inhibitor: Inhibitor, points: torch.Tensor, **kwargs) -> ModuliRegularizer:
    return ModuliRegularizer.from_embedding(manifold, points, inhibitor, learn_embedding=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# equality with the autograd path: every manifold x inhibitor x exponent x reduction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inhibitor_name", INHIBITORS)
@pytest.mark.parametrize("manifold_name", MANIFOLD_NAMES)
def test_fused_equals_autograd_for_every_manifold_and_inhibitor(manifold_name, inhibitor_name):
    manifold, inhibitor = get_manifold(manifold_name), _inhibitor(inhibitor_name)
    gen = torch.Generator().manual_seed(1)
    n = 13
    points = manifold.random(n, generator=gen, dtype=torch.float64)
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64)
    for exponent, reduction in itertools.product((1, 2), ("mean", "sum")):
        reg = _learned(manifold, inhibitor, points, exponent=exponent, reduction=reduction, strength=0.3)
        want = _reference(reg, weight)
        _assert_same(_fused(reg, weight), want, 1e-9, f"{manifold_name}/{inhibitor_name}/l={exponent}/{reduction}")
        # and through forward (the route a training loop takes)
        reg.embedding.grad = None
        w = weight.clone().requires_grad_(True)
        value = reg(w)
        value.backward()
        grad_x = reg.embedding.grad if reg.embedding.grad is not None else torch.zeros_like(reg.embedding)
        _assert_same((value.detach(), w.grad, grad_x), want, 1e-9, f"forward {manifold_name}/{inhibitor_name}")
    # the positions' gradient is not trivially zero (except for the constant inhibitor)
    assert (float(want[2].abs().max()) > 0) == (inhibitor_name != "constant")


@pytest.mark.parametrize("manifold_name", ["torus", "klein", "s3", "mixed"])
def test_fused_equals_autograd_in_float32(manifold_name):
    manifold = get_manifold(manifold_name)
    gen = torch.Generator().manual_seed(2)
    n = 50
    points = manifold.random(n, generator=gen)
    weight = torch.randn(n, n, generator=gen)
    for inhibitor in (DoG(), Gaussian(), Identity()):
        reg = _learned(manifold, inhibitor, points)
        _assert_same(_fused(reg, weight), _reference(reg, weight), 1e-5, f"{manifold_name}/{inhibitor!r}")


def test_permuted_control_with_learned_embedding():
    gen = torch.Generator().manual_seed(3)
    n = 11
    reg = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=True, permute=True, generator=gen,
                            points=Torus().random(n, generator=gen, dtype=torch.float64))
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64)
    want = _reference(reg, weight)
    _assert_same(_fused(reg, weight), want, 1e-9, "permuted")
    w = weight.clone().requires_grad_(True)
    reg.embedding.grad = None
    value = reg(w)
    value.backward()
    _assert_same((value.detach(), w.grad, reg.embedding.grad), want, 1e-9, "permuted forward")
    # the un-permuted penalty differs: the permutation is really applied
    plain = _learned(Torus(), DoG(), reg.embedding.detach())
    assert float(plain(weight).detach()) != pytest.approx(float(want[0]), rel=1e-3)


# ---------------------------------------------------------------------------------------------
# seams, antipodes, coincident points
# ---------------------------------------------------------------------------------------------


def _grid(period: float, dim: int = 2) -> torch.Tensor:
    """Points on the quarter-period grid, including 0 (the seam): many pairs exactly half a period
    apart, where the nearest image switches."""
    ticks = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64) * period
    return torch.cartesian_prod(*[ticks] * dim)


def _seam_cases() -> list[tuple[str, Manifold, torch.Tensor]]:
    torus, klein = Torus(), KleinBottle()
    sphere, s3, circle = Sphere(2), Sphere(3, 10.0), Circle()
    gen = torch.Generator().manual_seed(4)
    s2 = sphere.random(5, generator=gen, dtype=torch.float64)
    s2 = torch.cat([s2, -s2, s2[:2]])  # antipodes and coincident points
    s3_points = s3.random(4, generator=gen, dtype=torch.float64)
    s3_points = torch.cat([s3_points, -s3_points, torch.eye(4, dtype=torch.float64), -torch.eye(4, dtype=torch.float64)])
    angles = torch.arange(8, dtype=torch.float64) * (torch.pi / 4)  # pairs at exactly pi apart
    c = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    c = torch.cat([c, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)])
    period = torus.period
    torus_points = torch.cat([_grid(period), torch.tensor([[period - 1e-9, 0.0], [1e-9, 5.0]], dtype=torch.float64)])
    mixed = Product(Sphere(2), Torus(2))
    m_points = torch.cat([torch.cat([s2[:8], _grid(period)[:8]], dim=-1), torch.cat([-s2[:8], _grid(period)[8:]], dim=-1)])
    return [
        ("torus grid", torus, torus_points),
        ("torus6 grid", Torus(6), _grid(period, 6)[::37]),
        ("klein grid", klein, _grid(klein.period)),
        ("klein seam ties", klein, torch.tensor([[0.0, 0.0], [5.0, 0.0], [5.0, 3.0], [0.0, 7.0], [9.5, 5.0], [4.5, 5.0],
                                                 [0.0, 5.0], [5.0, 5.0], [2.5, 0.0], [7.5, 0.0]], dtype=torch.float64)),
        ("sphere antipodes", sphere, s2),
        ("s3 antipodes", s3, s3_points),
        ("circle antipodes", circle, c),
        ("mixed", mixed, m_points),
    ]


@pytest.mark.parametrize("case", _seam_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_seams_antipodes_and_coincident_points_match_autograd(case, dtype):
    _, manifold, points = case
    points = points.to(dtype)
    n = points.shape[0]
    weight = torch.randn(n, n, generator=torch.Generator().manual_seed(5), dtype=dtype)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    for inhibitor in (DoG(), Identity(), DoG(offset=100.0), get_inhibitor("ripple")):
        reg = _learned(manifold, inhibitor, points)
        got, want = _fused(reg, weight), _reference(reg, weight)
        assert torch.isfinite(got[2]).all()
        _assert_same(got, want, tol, f"{case[0]} {inhibitor!r}")


def test_the_seam_cases_really_contain_ties():
    """The grids above hold pairs exactly half a period apart (torus), equidistant odd and even
    images (Klein bottle), antipodal and coincident pairs (spheres)."""
    torus_points = _grid(10.0)
    diff = (torus_points[:, None, :] - torus_points[None, :, :]).abs()
    assert bool((diff == 5.0).any())
    x, y = torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor([5.0, 3.0], dtype=torch.float64)
    even = torch.tensor([5.0, 3.0]).square().sum()
    odd = torch.tensor([-5.0, -3.0]).square().sum()  # (y0 - x0 + p) mod 2p, (-y1 - x1) mod p
    assert float(even) == float(odd)
    assert float(KleinBottle().distance(x, y)) == pytest.approx(float(even.sqrt()))
    s2 = _seam_cases()[4][2]
    assert bool(((s2[:5] + s2[5:10]).abs().max(dim=-1).values == 0).all())


# ---------------------------------------------------------------------------------------------
# gradcheck and the closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("manifold_name, inhibitor", [
    ("torus", DoG(offset=100.0)), ("klein", Gaussian()), ("sphere", get_inhibitor("ripple")),
    ("r3", Identity()), ("mixed", get_inhibitor("diffusion")), ("circle", DoG(offset=90.0)),
])
@pytest.mark.parametrize("exponent", [1, 2])
def test_gradcheck(manifold_name, inhibitor, exponent):
    manifold = get_manifold(manifold_name)
    gen = torch.Generator().manual_seed(6)
    n = 6
    points = manifold.random(n, generator=gen, dtype=torch.float64).requires_grad_(True)
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64).requires_grad_(True)

    def penalty(x, w):
        return fused_penalty(manifold, inhibitor, x, w, exponent, 0.7)

    assert torch.autograd.gradcheck(penalty, (points, weight), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("manifold_name", MANIFOLD_NAMES)
def test_manifold_closed_forms_equal_their_autograd_default(manifold_name):
    manifold = get_manifold(manifold_name)
    gen = torch.Generator().manual_seed(7)
    x = manifold.random(9, generator=gen, dtype=torch.float64)
    x = torch.cat([x, x[:2], manifold.project(-x[2:4]) if isinstance(manifold, Sphere) else x[2:4]])
    xt = x.t()
    for rows, cols in ((xt.unsqueeze(2), xt.unsqueeze(1)), (xt.unsqueeze(1), xt.unsqueeze(2))):
        s, s_x, s_y = manifold.squared_distance_and_gradients(rows, cols)
        r, r_x, r_y = Manifold.squared_distance_and_gradients(manifold, rows, cols)
        torch.testing.assert_close(s, r, rtol=1e-12, atol=1e-12)
        for got, want in zip(s_x + s_y, r_x + r_y):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
        value_only = manifold.squared_distance_and_gradients(rows, cols, gradients=False)
        assert value_only[1] is None and torch.equal(value_only[0], s)
    torch.testing.assert_close(s.sqrt(), manifold.pairwise_distance(x).T, rtol=1e-12, atol=1e-12)


def test_exact_symmetry_flag_is_true_exactly_where_swapping_is_bit_identical():
    gen = torch.Generator().manual_seed(8)
    for name in MANIFOLD_NAMES:
        manifold = get_manifold(name)
        xt = manifold.random(40, generator=gen).t()
        s, s_x, s_y = manifold.squared_distance_and_gradients(xt.unsqueeze(2), xt.unsqueeze(1))
        t, t_x, t_y = manifold.squared_distance_and_gradients(xt.unsqueeze(1), xt.unsqueeze(2))
        swapped_equal = torch.equal(s, t) and all(torch.equal(a, b) for a, b in zip(s_x + s_y, t_y + t_x))
        if manifold.exact_symmetry:
            assert swapped_equal, name
    assert not KleinBottle().exact_symmetry and Product(Sphere(2), Torus(2)).exact_symmetry
    assert not Product(Torus(2), KleinBottle()).exact_symmetry


@pytest.mark.parametrize("inhibitor_name", INHIBITORS)
def test_inhibitor_closed_forms_equal_their_autograd_default(inhibitor_name):
    inhibitor = _inhibitor(inhibitor_name)
    d = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(1e-3, 12.0, 400, dtype=torch.float64),
                   torch.tensor([DoG().peak_distance], dtype=torch.float64)])
    f, df = Inhibitor.value_and_derivative(inhibitor, d)
    torch.testing.assert_close(f, inhibitor(d))
    got_f, got_df = inhibitor.value_and_derivative(d)
    torch.testing.assert_close(got_f, f, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_df, df, rtol=1e-10, atol=1e-10)
    s = d * d
    g, slope = inhibitor.at_squared_distance(s)
    g_ref, slope_ref = Inhibitor.at_squared_distance(inhibitor, s)
    torch.testing.assert_close(g, f, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g_ref, f, rtol=1e-10, atol=1e-10)
    # df/ds = f'(d) / (2 d) away from 0
    torch.testing.assert_close(slope[1:-1], df[1:-1] / (2 * d[1:-1]), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(slope[1:-1], slope_ref[1:-1], rtol=1e-8, atol=1e-10)


def test_pair_at_the_dog_peak_gets_the_clamps_zero_gradient():
    """Within ~1e-9 of the peak distance the unclamped DoG rounds below 0 in float64; autograd
    through the clamp then gives the pair no gradient, and so must the fused kernel."""
    dog = DoG()
    t = dog.peak_distance + torch.arange(-2000, 2000, dtype=torch.float64) * 1e-12
    below = t[dog._from_squared(t * t)[0] < 0]
    assert len(below) > 0
    points = torch.tensor([[0.0, 0.0], [float(below[0]), 0.0]], dtype=torch.float64)
    reg = _learned(Torus(), dog, points)
    weight = torch.tensor([[0.5, -2.0], [1.5, 0.3]], dtype=torch.float64)
    want = _reference(reg, weight)
    assert float(want[2].abs().max()) == 0.0
    _assert_same(_fused(reg, weight), want, 1e-9, "at the peak")


def test_dog_floor_keeps_values_and_the_clamp_zeroes_the_slope():
    from moduli.inhibitors.base import exp_floored

    u = torch.tensor([0.0, -1.0, -50.0, -80.0, -90.0, -300.0], dtype=torch.float64)
    assert float((exp_floored(u) - torch.exp(u)).abs().max()) <= 2e-35
    dog = DoG()
    d = torch.tensor([0.0, 1.0, 5.0, 30.0, 60.0], dtype=torch.float64)
    want = dog.offset - dog.amplitude * (torch.exp(-d**2 / 5.0) - torch.exp(-d**2 / 0.25))
    torch.testing.assert_close(dog(d), want.clamp_min(0.0), rtol=1e-15, atol=1e-30)
    # at the peak distance rounding can make the unclamped value negative: the slope is then 0
    out, slope = dog.at_squared_distance(torch.full((1,), dog.peak_distance**2 * (1 + 1e-9), dtype=torch.float64))
    raw = dog.offset - dog.amplitude * (
        torch.exp(torch.tensor(-dog.peak_distance**2 * (1 + 1e-9) / 5.0, dtype=torch.float64))
        - torch.exp(torch.tensor(-dog.peak_distance**2 * (1 + 1e-9) / 0.25, dtype=torch.float64))
    )
    assert (float(slope) == 0.0) == (float(raw) < 0.0)


# ---------------------------------------------------------------------------------------------
# custom spaces and inhibitors (the autograd defaults), blocks, memory
# ---------------------------------------------------------------------------------------------


class _Line(Manifold):
    """R with |x - y|, no closed form: the base class differentiates it."""

    name = "line"
    dim = coord_dim = 1

    def random(self, n, generator=None, device=None, dtype=torch.float32):
        return torch.randn(n, 1, generator=generator, dtype=dtype)

    def _distance(self, x, y):
        return (x - y).abs().squeeze(-1)

    def project(self, x):
        return x

    def _make_geoopt(self):
        return geoopt.Euclidean(ndim=1)

    def to_config(self):
        return {"name": self.name}


class _Cube(Inhibitor):
    """f(d) = d^3 + 1, no closed form: the base class differentiates it."""

    name = "cube"

    def _apply(self, d):
        return d**3 + 1.0

    def to_config(self):
        return {"name": self.name}


def test_custom_manifold_and_inhibitor_use_the_autograd_defaults():
    gen = torch.Generator().manual_seed(9)
    n = 10
    for manifold, inhibitor in ((_Line(), DoG()), (Torus(), _Cube()), (_Line(), _Cube())):
        points = manifold.random(n, generator=gen, dtype=torch.float64)
        weight = torch.randn(n, n, generator=gen, dtype=torch.float64)
        reg = _learned(manifold, inhibitor, points, exponent=2)
        _assert_same(_fused(reg, weight), _reference(reg, weight), 1e-9, f"{manifold!r} {inhibitor!r}")


@pytest.mark.parametrize("manifold_name", ["torus", "klein", "sphere"])
def test_row_blocks_with_a_shorter_last_block(monkeypatch, manifold_name):
    monkeypatch.setattr(fused, "CPU_BLOCK_ELEMENTS", 7 * 37)  # 37 neurons -> blocks of 7 rows, then 2
    assert fused.block_rows(37, torch.device("cpu")) == 7
    manifold = get_manifold(manifold_name)
    gen = torch.Generator().manual_seed(10)
    points = manifold.random(37, generator=gen, dtype=torch.float64)
    weight = torch.randn(37, 37, generator=gen, dtype=torch.float64)
    reg = _learned(manifold, DoG(), points)
    _assert_same(_fused(reg, weight), _reference(reg, weight), 1e-9, manifold_name)


def test_block_rows():
    cpu = torch.device("cpu")
    assert fused.block_rows(1024, cpu) * 1024 <= fused.CPU_BLOCK_ELEMENTS
    assert fused.block_rows(1000, cpu) == 63  # 16 blocks of 63 rows (the last one 55)
    assert fused.block_rows(1, cpu) == 1
    assert fused.block_rows(10**6, cpu) == 1
    assert fused.block_rows(4096, cpu, compiled=True) * 4096 == fused.COMPILED_CPU_BLOCK_ELEMENTS
    assert fused.block_rows(4096, torch.device("meta")) * 4096 == fused.DEVICE_BLOCK_ELEMENTS


class _LargestOutput(TorchDispatchMode):
    """Records the largest number of elements of any tensor an ATen op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("manifold_name", ["torus", "torus6", "sphere", "klein"])
def test_no_n_by_n_by_coord_dim_temporaries(manifold_name):
    manifold = get_manifold(manifold_name)
    n = 96
    gen = torch.Generator().manual_seed(11)
    reg = ModuliRegularizer(manifold, n, DoG(), learn_embedding=True, generator=gen)
    weight = torch.randn(n, n, generator=gen, requires_grad=True)
    for path, bound in (("fused", n * n), ("autograd", None)):
        reg.penalty_path = path
        with _LargestOutput() as probe:
            reg(weight).backward()
        if bound is not None:
            # nothing larger than the weight's own gradient; the blocks are (B, N) with B < N
            assert probe.largest <= bound, (path, probe.largest)
        else:
            # the reference path does build (N, N, coord_dim) differences: the probe sees them
            assert probe.largest >= n * n * manifold.coord_dim


# ---------------------------------------------------------------------------------------------
# the compiled kernel
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="torch.compile needs a C++ compiler on CPU")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_kernel_equals_autograd(monkeypatch):
    monkeypatch.setattr(fused, "COMPILED_CPU_BLOCK_ELEMENTS", 24 * 40)  # 40 neurons: blocks of 20 rows
    gen = torch.Generator().manual_seed(12)
    n = 40
    reg = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=True, generator=gen)
    reg.penalty_path = "compiled"
    weight = torch.randn(n, n, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed compilation warns: fail instead
        got = _fused(reg, weight, compiled=True)
        w = weight.clone().requires_grad_(True)
        reg.embedding.grad = None
        value = reg(w)
        value.backward()
    assert not fused._FAILED
    want = _reference(reg, weight)
    _assert_same(got, want, 1e-5, "compiled")
    _assert_same((value.detach(), w.grad, reg.embedding.grad), want, 1e-5, "compiled forward")


def test_a_failed_compilation_warns_once_and_runs_uncompiled(monkeypatch):
    def no_compiler(*args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("no working C++ compiler\nmore detail")
        return fail

    monkeypatch.setattr(fused, "_FAILED", {})
    monkeypatch.setattr(fused, "_compiled", no_compiler)
    gen = torch.Generator().manual_seed(18)
    reg = _learned(Torus(), DoG(), Torus().random(12, generator=gen, dtype=torch.float64))
    weight = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match=r"torch.compile of the fused moduli penalty failed \(RuntimeError: no working C\+\+ compiler\)"):
        got = _fused(reg, weight, compiled=True)
    assert set(fused._FAILED) == {"gradient"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: no second warning
        again = _fused(reg, weight, compiled=True)
    want = _reference(reg, weight)
    _assert_same(got, want, 1e-9, "fallback")
    _assert_same(again, want, 1e-9, "fallback again")


# ---------------------------------------------------------------------------------------------
# the regulariser's public behaviour
# ---------------------------------------------------------------------------------------------


def test_penalty_paths_choice_and_bad_value():
    small = ModuliRegularizer(Torus(), 8, DoG(), learn_embedding=True)
    assert small._penalty_path() == "fused"
    big = ModuliRegularizer(Torus(), 512, DoG(), learn_embedding=True)
    assert big._penalty_path() == "compiled"
    assert ModuliRegularizer(Torus(), 512, DoG())._penalty_path() == "autograd"  # fixed: cached coefficients
    assert ModuliRegularizer(Torus(), 8, Constant(2.0), learn_embedding=True)._penalty_path() == "autograd"
    small.penalty_path = "autograd"
    assert small._penalty_path() == "autograd"
    small.penalty_path = "fast"
    with pytest.raises(ValueError, match=r"penalty_path must be one of .*'fused'"):
        small(torch.zeros(8, 8))


def test_inverted_coefficients_stay_on_the_autograd_path():
    """max C - C couples every entry through the maximum: the fused kernel does not apply."""
    gen = torch.Generator().manual_seed(17)
    reg = ModuliRegularizer(Torus(), 9, get_inhibitor("diffusion"), learn_embedding=True, invert=True, generator=gen)
    assert reg._penalty_path() == "autograd"
    weight = torch.randn(9, 9, generator=gen)
    c = reg.coefficients()
    assert reg(weight).item() == pytest.approx((0.1 * (c * weight.abs()).mean()).item(), rel=1e-6)


def test_gradient_only_where_asked_and_no_grad_mode():
    gen = torch.Generator().manual_seed(13)
    n = 9
    reg = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=True, generator=gen)
    weight = torch.randn(n, n, generator=gen)
    reg.penalty_path = "autograd"
    want = float(reg(weight).detach())
    reg.penalty_path = "fused"
    with torch.no_grad():
        value = reg(weight)
    assert not value.requires_grad and float(value) == pytest.approx(want, rel=1e-6)
    # weight without grad: only the positions get one
    reg(weight).backward()
    assert reg.embedding.grad is not None
    # frozen positions: only the weight gets one
    reg.embedding.requires_grad_(False)
    w = weight.clone().requires_grad_(True)
    reg(w).backward()
    assert w.grad is not None and float(w.grad.abs().max()) > 0


def test_learning_the_embedding_follows_the_autograd_path():
    """A few RiemannianAdam steps on the positions (and AdamW on W): the same trajectory either way."""
    trajectories = {}
    for path in ("autograd", "fused"):
        gen = torch.Generator().manual_seed(14)
        n = 16
        points = Torus().random(n, generator=gen, dtype=torch.float64)
        reg = _learned(Torus(), DoG(), points, strength=1.0)
        reg.penalty_path = path
        weight = torch.nn.Parameter(torch.randn(n, n, generator=gen, dtype=torch.float64))
        opt = torch.optim.AdamW([weight], lr=1e-2)
        ropt = geoopt.optim.RiemannianAdam([reg.embedding], lr=0.05)
        for _ in range(20):
            opt.zero_grad()
            ropt.zero_grad()
            reg(weight).backward()
            opt.step()
            ropt.step()
        trajectories[path] = (reg.embedding.detach().clone(), weight.detach().clone())
        assert isinstance(reg.embedding, geoopt.ManifoldParameter)
        assert bool((reg.embedding >= 0).all() and (reg.embedding < 10.0).all())
    for a, b in zip(trajectories["autograd"], trajectories["fused"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert not torch.equal(trajectories["fused"][0], Torus().random(16, generator=torch.Generator().manual_seed(14), dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("manifold_name", ["torus", "klein", "sphere", "mixed"])
def test_fused_on_cuda_equals_autograd_on_cpu(manifold_name):
    manifold = get_manifold(manifold_name)
    gen = torch.Generator().manual_seed(15)
    n = 300
    points = manifold.random(n, generator=gen, dtype=torch.float64)
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64)
    want = _reference(_learned(manifold, DoG(), points), weight)
    reg = _learned(manifold, DoG(), points).to("cuda")
    reg.penalty_path = "fused"
    got = _fused(reg, weight.cuda())
    assert got[0].device.type == "cuda" and reg.embedding.device.type == "cuda"
    _assert_same(tuple(t.cpu() for t in got), want, 1e-9, f"cuda {manifold_name}")



def test_retain_graph_and_the_incoming_gradient():
    """As on the autograd path: a retained graph can be differentiated again, and the incoming
    gradient scales both gradients."""
    gen = torch.Generator().manual_seed(16)
    n = 7
    reg = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=True, generator=gen)
    reg.penalty_path = "fused"
    weight = torch.randn(n, n, generator=gen, requires_grad=True)
    value = reg(weight)
    (3.0 * value).backward(retain_graph=True)
    value.backward()
    g_w, g_x = weight.grad.clone(), reg.embedding.grad.clone()
    weight.grad, reg.embedding.grad = None, None
    reg(weight).backward()
    torch.testing.assert_close(g_w, 4.0 * weight.grad)
    torch.testing.assert_close(g_x, 4.0 * reg.embedding.grad)
