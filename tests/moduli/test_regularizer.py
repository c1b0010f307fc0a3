"""Tests of moduli.regularizer.ModuliRegularizer: the penalty against a brute-force double loop,
coefficient caching (fixed) and recomputation (learned), the permuted / L1 / mean-matched L1
controls, state_dict round trips, a short learning run of the embedding, and bad input."""

from __future__ import annotations

import io
import math

import geoopt
import pytest
import torch

from moduli.inhibitors import Constant, Diffusion, DoG, Identity, Ripple
from moduli.manifolds import Euclidean, Torus
from moduli.manifolds.geoopt_flat import FlatTorusGeoopt
from moduli.regularizer import ModuliRegularizer

torch.set_num_threads(1)

PERIOD = 10.0


# ---------------------------------------------------------------------------------------------
# independent float64 reference
# ---------------------------------------------------------------------------------------------


def torus_distance_ref(points: torch.Tensor, period: float) -> list[list[float]]:
    """(N, N) torus distances by a Python double loop in float64."""
    pts = points.detach().double().tolist()
    n = len(pts)
    out = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            s = 0.0
            for a, b in zip(pts[i], pts[j]):
                dx = abs(a - b)
                s += min(dx, period - dx) ** 2
            out[i][j] = math.sqrt(s)
    return out


def dog_ref(d: float, amplitude: float = 100.0, sw: float = 5.0, sn: float = 0.25) -> float:
    """Inverted DoG with the analytic peak as offset, clamped at 0 (float64)."""
    d_peak2 = math.log(sw / sn) / (1.0 / sn - 1.0 / sw)
    offset = amplitude * (math.exp(-d_peak2 / sw) - math.exp(-d_peak2 / sn))
    return max(offset - amplitude * (math.exp(-d * d / sw) - math.exp(-d * d / sn)), 0.0)


def penalty_ref(points, weight, strength, exponent, reduction, period=PERIOD) -> float:
    dist = torus_distance_ref(points, period)
    w = weight.detach().double().tolist()
    n = len(w)
    total = 0.0
    for j in range(n):
        for k in range(n):
            total += dog_ref(dist[j][k]) * abs(w[j][k]) ** exponent
    if reduction == "mean":
        total /= n * n
    return strength * total


def offdiag(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m[~torch.eye(n, dtype=torch.bool, device=m.device)]


# ---------------------------------------------------------------------------------------------
# penalty value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [1, 2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_penalty_matches_brute_force_double_loop(exponent, reduction):
    gen = torch.Generator().manual_seed(3)
    n = 9
    # some coordinates outside [0, period): the constructor wraps them, the reference does not care
    points = torch.rand(n, 2, generator=gen) * 14.0 - 2.0
    weight = torch.randn(n, n, generator=gen)
    reg = ModuliRegularizer.from_embedding(
        Torus(), points, DoG(), strength=0.1, exponent=exponent, reduction=reduction
    )
    got = float(reg(weight))
    want = penalty_ref(points, weight, 0.1, exponent, reduction)
    assert got == pytest.approx(want, rel=1e-5)
    # points closer than the DoG peak exist, so the coefficient matrix is not trivially flat
    assert float(reg.coefficients().min()) < 40.0 < float(reg.coefficients().max())


def test_penalty_gradient_wrt_weight():
    gen = torch.Generator().manual_seed(4)
    n = 6
    reg = ModuliRegularizer(Torus(), n, DoG(), strength=0.3, generator=gen)
    weight = torch.randn(n, n, generator=gen, requires_grad=True)
    reg(weight).backward()
    want = 0.3 * reg.coefficients() * torch.sign(weight.detach()) / n**2
    torch.testing.assert_close(weight.grad, want, rtol=1e-5, atol=1e-7)


def test_distances_and_coefficients_values():
    gen = torch.Generator().manual_seed(5)
    n = 8
    reg = ModuliRegularizer(Torus(), n, DoG(), generator=gen)
    d = reg.distances()
    assert d.shape == (n, n)
    ref = torch.tensor(torus_distance_ref(reg.embedding, PERIOD), dtype=torch.float64)
    torch.testing.assert_close(d.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.all(d.diagonal() == 0)
    c = reg.coefficients()
    assert c.shape == (n, n)
    c_ref = torch.tensor([[dog_ref(v) for v in row] for row in ref.tolist()], dtype=torch.float64)
    torch.testing.assert_close(c.double(), c_ref, rtol=1e-5, atol=1e-4)
    # a neuron sitting on itself is far from the DoG minimum: f(0) = peak value
    torch.testing.assert_close(c.diagonal().double(), torch.full((n,), DoG().peak_value, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# fixed vs learned embeddings
# ---------------------------------------------------------------------------------------------


def test_fixed_embedding_caches_coefficients(monkeypatch):
    gen = torch.Generator().manual_seed(6)
    n = 7
    reg = ModuliRegularizer(Torus(), n, DoG(), generator=gen)
    weight = torch.randn(n, n, generator=gen)
    before = float(reg(weight))
    assert reg.coefficients() is reg.coefficients()
    assert not reg.embedding.requires_grad
    assert "embedding" in dict(reg.named_buffers())
    assert list(reg.parameters()) == []

    def boom(*args, **kwargs):
        raise AssertionError("pairwise_distance recomputed for a fixed embedding")

    monkeypatch.setattr(reg.manifold, "pairwise_distance", boom)
    monkeypatch.setattr(reg.manifold, "squared_distance_and_gradients", boom)  # the fused kernel's entry
    assert float(reg(weight)) == before
    assert float(reg(weight)) == before


def test_learned_embedding_recomputes_and_gets_gradients(monkeypatch):
    gen = torch.Generator().manual_seed(7)
    n = 7
    reg = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=True, generator=gen)
    assert isinstance(reg.embedding, geoopt.ManifoldParameter)
    assert isinstance(reg.embedding.manifold, FlatTorusGeoopt)
    assert [p for p in reg.parameters()] == [reg.embedding]
    assert reg.coefficients() is not reg.coefficients()

    weight = torch.randn(n, n, generator=gen)
    reg(weight).backward()
    g = reg.embedding.grad
    assert g is not None and g.shape == (n, 2)
    assert torch.isfinite(g).all() and float(g.abs().max()) > 0

    # moving one neuron changes the coefficients on the next call
    c0 = reg.coefficients().detach().clone()
    with torch.no_grad():
        reg.embedding[0] = torch.remainder(reg.embedding[0] + 0.5, PERIOD)
    assert not torch.allclose(reg.coefficients(), c0)

    def boom(*args, **kwargs):
        raise RuntimeError("recomputed")

    # the fused kernel (forward) and the coefficient matrix (autograd path) both recompute
    monkeypatch.setattr(reg.manifold, "squared_distance_and_gradients", boom)
    with pytest.raises(RuntimeError, match="recomputed"):
        reg(weight)
    monkeypatch.setattr(reg.manifold, "pairwise_distance", boom)
    with pytest.raises(RuntimeError, match="recomputed"):
        reg.autograd_penalty(weight)


def test_learned_embedding_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(8)
    n = 5
    points = Torus().random(n, generator=gen, dtype=torch.float64)
    weight = torch.randn(n, n, generator=gen, dtype=torch.float64)
    reg = ModuliRegularizer.from_embedding(Torus(), points, DoG(), learn_embedding=True, strength=1.0)
    reg(weight).backward()
    grad = reg.embedding.grad.clone()
    eps = 1e-6
    for i, a in [(0, 0), (2, 1), (4, 0)]:
        with torch.no_grad():
            reg.embedding[i, a] += eps
            up = float(reg(weight))
            reg.embedding[i, a] -= 2 * eps
            down = float(reg(weight))
            reg.embedding[i, a] += eps
        assert float(grad[i, a]) == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# controls
# ---------------------------------------------------------------------------------------------


def test_permuted_control_keeps_the_multiset():
    n = 10
    plain = ModuliRegularizer(Torus(), n, DoG(), generator=torch.Generator().manual_seed(11))
    perm = ModuliRegularizer(Torus(), n, DoG(), permute=True, generator=torch.Generator().manual_seed(11))
    again = ModuliRegularizer(Torus(), n, DoG(), permute=True, generator=torch.Generator().manual_seed(11))
    other = ModuliRegularizer(Torus(), n, DoG(), permute=True, generator=torch.Generator().manual_seed(12))
    # same seed: the same embedding is drawn before the permutation
    torch.testing.assert_close(perm.embedding, plain.embedding)
    a, b = plain.coefficients(), perm.coefficients()
    torch.testing.assert_close(torch.sort(a.reshape(-1)).values, torch.sort(b.reshape(-1)).values, rtol=0, atol=0)
    assert not torch.equal(a, b)
    # the geometry is gone: the permuted matrix is in general not symmetric
    assert not torch.equal(b, b.T)
    torch.testing.assert_close(again.coefficients(), b, rtol=0, atol=0)
    assert not torch.equal(other.coefficients(), b)
    # the penalty uses the permuted matrix
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    assert float(perm(w)) == pytest.approx(float(0.1 * (b * w.abs()).mean()), rel=1e-6)


def test_mean_matched_l1_is_the_mean_dog_coefficient():
    n = 12
    reg = ModuliRegularizer.mean_matched_l1(n, strength=0.2, generator=torch.Generator().manual_seed(21))
    ref_points = Torus().random(n, generator=torch.Generator().manual_seed(21))
    dist = torus_distance_ref(ref_points, PERIOD)
    mean = sum(dog_ref(v) for row in dist for v in row) / n**2
    c = reg.coefficients()
    assert c.shape == (n, n)
    assert torch.all(c == c[0, 0])
    assert float(c[0, 0]) == pytest.approx(mean, rel=1e-5)
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    assert float(reg(w)) == pytest.approx(0.2 * mean * float(w.abs().mean()), rel=1e-5)
    # another seed gives another reference embedding and another mean
    other = ModuliRegularizer.mean_matched_l1(n, generator=torch.Generator().manual_seed(22))
    assert float(other.coefficients()[0, 0]) != pytest.approx(mean, rel=1e-4)


def test_l1_control():
    n = 6
    reg = ModuliRegularizer.l1(n, strength=0.05)
    assert torch.equal(reg.coefficients(), torch.ones(n, n))
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float(reg(w)) == pytest.approx(0.05 * float(w.abs().mean()), rel=1e-12)
    reg2 = ModuliRegularizer.l1(n, strength=0.05, exponent=2, reduction="sum")
    assert float(reg2(w)) == pytest.approx(0.05 * float((w**2).sum()), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# state_dict round trip
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("permute", [False, True])
def test_state_dict_round_trip(learn, permute):
    n = 8
    src = ModuliRegularizer(
        Torus(), n, DoG(), learn_embedding=learn, permute=permute, generator=torch.Generator().manual_seed(31)
    )
    dst = ModuliRegularizer(
        Torus(), n, DoG(), learn_embedding=learn, permute=permute, generator=torch.Generator().manual_seed(32)
    )
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(3))
    assert float(src(w).detach()) != pytest.approx(float(dst(w).detach()), rel=1e-4)

    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert "_cached" not in state  # the cache is derived, not stored
    dst.load_state_dict(state)

    torch.testing.assert_close(dst.embedding.detach(), src.embedding.detach(), rtol=0, atol=0)
    torch.testing.assert_close(dst.coefficients(), src.coefficients(), rtol=0, atol=0)
    assert float(dst(w).detach()) == float(src(w).detach())
    if learn:
        assert isinstance(dst.embedding, geoopt.ManifoldParameter)


# ---------------------------------------------------------------------------------------------
# behaviour: learning the embedding
# ---------------------------------------------------------------------------------------------


def _learn_embedding(manifold, inhibitor, n: int = 28, steps: int = 250):
    gen = torch.Generator().manual_seed(41)
    reg = ModuliRegularizer(manifold, n, inhibitor, learn_embedding=True, strength=1.0, generator=gen)
    weight = torch.randn(n, n, generator=gen)  # fixed, random
    opt = geoopt.optim.RiemannianAdam([reg.embedding], lr=0.05)

    def stats():
        with torch.no_grad():
            d = reg.distances()
            nearest = (d + torch.eye(n) * 1e9).min(dim=1).values
            return float(offdiag(d).mean()), float(nearest.median())

    start = stats()
    for _ in range(steps):
        opt.zero_grad()
        reg(weight).backward()
        opt.step()
    return reg, start, stats()


@pytest.mark.parametrize("manifold", [Torus(), Euclidean(2)], ids=["torus", "euclidean"])
def test_learned_dog_embedding_stays_spread_identity_collapses(manifold):
    dog_reg, (mean0, nn0), (dog_mean, dog_nn) = _learn_embedding(manifold, DoG())
    id_reg, (id_mean0, _), (id_mean, id_nn) = _learn_embedding(manifold, Identity())
    assert mean0 == id_mean0  # same seed, same start
    peak = DoG().peak_distance
    # DoG: pairs settle around the peak distance, neighbours keep a clear gap
    assert dog_mean > 0.2 * mean0
    assert dog_mean > 0.5 * peak
    assert dog_nn > 0.1 * peak
    # Identity: f(d) = d pulls every pair together
    assert id_mean < 0.02 * mean0
    assert dog_mean > 20 * id_mean
    if isinstance(manifold, Torus):
        for reg in (dog_reg, id_reg):
            e = reg.embedding.detach()
            assert torch.all(e >= 0) and torch.all(e < PERIOD)
            assert isinstance(reg.embedding, geoopt.ManifoldParameter)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_wrong_weight_shape_names_expected_shape_and_fix():
    reg = ModuliRegularizer(Torus(), 5, DoG(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"\(5, 5\).*num_neurons"):
        reg(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"\(5, 5\)"):
        reg(torch.zeros(5, 4))
    with pytest.raises(TypeError, match=r"\(5, 5\) recurrent weight as a torch\.Tensor, got a builtins\.list"):
        reg([[0.0] * 5] * 5)


def test_integer_weight_rejected():
    reg = ModuliRegularizer(Torus(), 3, DoG(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="floating"):
        reg(torch.ones(3, 3, dtype=torch.int64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_neurons": 0}, "num_neurons"),
        ({"num_neurons": -3}, "num_neurons"),
        ({"num_neurons": 2.5}, "num_neurons"),
        ({"num_neurons": True}, "num_neurons"),
        ({"exponent": 3}, "exponent"),
        ({"exponent": 0}, "exponent"),
        ({"strength": -0.1}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"strength": float("inf")}, "strength"),
        ({"strength": "0.1"}, "strength"),
        ({"reduction": "max"}, "reduction"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"manifold": Torus(), "num_neurons": 4, "inhibitor": DoG()}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ModuliRegularizer(**args)


def test_bad_manifold_or_inhibitor_type():
    with pytest.raises(TypeError, match="Manifold"):
        ModuliRegularizer("torus", 4, DoG())
    with pytest.raises(TypeError, match="Inhibitor"):
        ModuliRegularizer(Torus(), 4, lambda d: d)


def test_points_of_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, coord_dim\)"):
        ModuliRegularizer.from_embedding(Torus(), torch.rand(6), DoG())
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        ModuliRegularizer.from_embedding(Torus(), torch.rand(6, 3), DoG())
    with pytest.raises(ValueError, match=r"\(6, 2\)"):
        ModuliRegularizer(Torus(), 6, DoG(), points=torch.rand(5, 2))
    with pytest.raises(ValueError, match="finite"):
        ModuliRegularizer.from_embedding(Torus(), torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), DoG())


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("learn", [False, True])
def test_cuda_penalty_matches_cpu(learn):
    n = 16
    cpu = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=learn, permute=True, generator=torch.Generator().manual_seed(5))
    gpu = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=learn, permute=True, generator=torch.Generator().manual_seed(5))
    gpu = gpu.to("cuda")
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(6))
    value = gpu(w.cuda())
    assert value.device.type == "cuda"
    assert float(value) == pytest.approx(float(cpu(w)), rel=1e-5)
    gen = torch.Generator(device="cuda").manual_seed(0)
    on_gpu = ModuliRegularizer(Torus(), n, DoG(), learn_embedding=learn, permute=True, generator=gen)
    assert on_gpu.embedding.device.type == "cuda" and on_gpu.coefficients().device.type == "cuda"
    if learn:
        on_gpu(w.cuda()).backward()
        assert torch.isfinite(on_gpu.embedding.grad).all()


# ---------------------------------------------------------------- the research code's choices
def test_mean_matched_l1_of_the_plain_dog_is_the_research_codes_constant():
    n = 12
    reg = ModuliRegularizer.mean_matched_l1(n, strength=0.2, generator=torch.Generator().manual_seed(21), rule="plain_dog")
    ref_points = Torus().random(n, generator=torch.Generator().manual_seed(21))
    dist = torus_distance_ref(ref_points, PERIOD)
    plain = [100.0 * (math.exp(-v * v / 5.0) - math.exp(-v * v / 0.25)) for row in dist for v in row]
    mean = sum(plain) / n**2
    c = reg.coefficients()
    assert torch.all(c == c[0, 0]) and float(c[0, 0]) == pytest.approx(mean, rel=1e-5)
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
    assert float(reg(w)) == pytest.approx(0.2 * mean * float(w.abs().mean()), rel=1e-5)
    # at N = 1024 the draw is within 5 standard deviations (0.021, measured) of the expectation
    # 14.873 (N - 1) / N = 14.859, about 4.5 times below the mean of the inverted DoG (66.28)
    big = 1024
    plain_c = ModuliRegularizer.mean_matched_l1(big, generator=torch.Generator().manual_seed(0), rule="plain_dog")
    applied = ModuliRegularizer.mean_matched_l1(big, generator=torch.Generator().manual_seed(0), rule="applied")
    assert float(plain_c.coefficients()[0, 0]) == pytest.approx(DoG().plain_torus_mean(big), abs=0.1)
    assert float(plain_c.coefficients()[0, 0]) == pytest.approx(14.86, abs=0.1)
    assert float(applied.coefficients()[0, 0]) == pytest.approx(66.28, abs=0.1)
    # the same draw: the two constants add up to the DoG's peak (f = peak - plain, f >= 0)
    total = float(plain_c.coefficients()[0, 0] + applied.coefficients()[0, 0])
    assert total == pytest.approx(DoG().peak_value, rel=1e-5)
    with pytest.raises(ValueError, match="rule must be one of"):
        ModuliRegularizer.mean_matched_l1(n, rule="inverted")
    with pytest.raises(ValueError, match="needs a DoG"):
        ModuliRegularizer.mean_matched_l1(n, reference_inhibitor=Identity(), rule="plain_dog")


def _three_points() -> torch.Tensor:
    # torus distances: d(0, 1) = 5, d(0, 2) = sqrt(50), d(1, 2) = sqrt(5)
    return torch.tensor([[0.0, 0.0], [3.0, 4.0], [5.0, 5.0]], dtype=torch.float64)


def test_inverted_diffusion_is_the_largest_squared_distance_minus_d2():
    reg = ModuliRegularizer.from_embedding(Torus(), _three_points(), Diffusion(), invert=True)
    expected = torch.tensor([[50.0, 25.0, 0.0], [25.0, 50.0, 45.0], [0.0, 45.0, 50.0]], dtype=torch.float64)
    torch.testing.assert_close(reg.coefficients(), expected, rtol=0, atol=1e-12)
    plain = ModuliRegularizer.from_embedding(Torus(), _three_points(), Diffusion())
    torch.testing.assert_close(plain.coefficients(), 50.0 - expected, rtol=0, atol=1e-12)
    assert reg.invert and not plain.invert and "invert=True" in repr(reg)


def test_inverted_ripple_is_50_minus_50_cos_2d():
    # the diagonal (d = 0) holds the maximum 100 of 50 + 50 cos(2d), so max f - f = 50 - 50 cos(2d)
    reg = ModuliRegularizer.from_embedding(Torus(), _three_points(), Ripple(), invert=True)
    d = torch.tensor([[0.0, 5.0, 50**0.5], [5.0, 0.0, 5**0.5], [50**0.5, 5**0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(reg.coefficients(), 50.0 - 50.0 * torch.cos(2.0 * d), rtol=0, atol=1e-12)
    assert float(reg.coefficients().max()) < 100.0  # the largest inverted value is a far pair's


def test_inverted_coefficients_of_learned_positions_follow_the_positions():
    pts = Torus().random(8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    reg = ModuliRegularizer.from_embedding(Torus(), pts, Diffusion(), invert=True, learn_embedding=True)
    c = reg.coefficients()
    d2 = reg.distances() ** 2
    torch.testing.assert_close(c, d2.max() - d2)
    reg(torch.ones(8, 8, dtype=torch.float64)).backward()
    assert reg.embedding.grad is not None and bool(reg.embedding.grad.abs().sum() > 0)
    with pytest.raises(ValueError, match="all-zero penalty"):
        ModuliRegularizer(Torus(), 4, Constant(1.0), invert=True)


@pytest.mark.parametrize("learned, permute", [(True, False), (False, True), (True, True)])
def test_frozen_copy_keeps_positions_permutation_and_coefficients(learned, permute):
    reg = ModuliRegularizer(Torus(), 10, DoG(), learn_embedding=learned, permute=permute, invert=False,
                            generator=torch.Generator().manual_seed(4))
    if learned:  # move the positions away from their start
        with torch.no_grad():
            reg.embedding.add_(0.3)
            reg.embedding.copy_(Torus().project(reg.embedding))
    frozen = reg.frozen()
    assert not frozen.learn_embedding and not isinstance(frozen.embedding, torch.nn.Parameter)
    assert frozen.permute == permute and list(frozen.parameters()) == []
    assert torch.equal(frozen.embedding, reg.embedding.detach())
    assert torch.equal(frozen.coefficients(), reg.coefficients().detach())
    if permute:
        assert torch.equal(frozen.permutation, reg.permutation)
    # the copy is independent: moving the original leaves it unchanged
    before = frozen.coefficients().clone()
    with torch.no_grad():
        reg.embedding.mul_(0.5)
    assert torch.equal(frozen.coefficients(), before)
