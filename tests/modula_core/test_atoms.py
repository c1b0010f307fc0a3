"""Atoms (Linear, Embed, Conv2D) and bonds against independent computations.

Target norms after normalize/dualize are checked with ``torch.linalg.svdvals`` (per matrix, per
convolution tap, per embedding row); Newton–Schulz outputs against ``U p(S / ||G||_F) V^T`` from an
SVD, with p the schedule's composed polynomial; forward passes against brute-force loops.
"""

from __future__ import annotations

import math

import pytest
import torch

from modula_core import Vector
from modula_core.atom import Conv2D, Embed, Linear
from modula_core.bond import (
    GELU,
    Abs,
    Add,
    AvgPool,
    Enumerate,
    Flatten,
    FunctionalAttention,
    Identity,
    LayerNorm,
    Mean,
    MeanSubtract,
    MergeHeads,
    Mul,
    ReLU,
    RMSDivide,
    ScaledGELU,
    ScaledReLU,
    Select,
    SplitIntoHeads,
    Tanh,
)
from modula_core.linalg import NS_COEFFICIENTS

torch.set_num_threads(1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _spiked(*shape: int, seed: int = 0) -> torch.Tensor:
    """Gaussian matrices (..., m, n) plus a dominant rank-one part (well-separated top singular value)."""
    g = _gen(seed)
    *batch, m, n = shape
    return torch.randn(*shape, generator=g) + 3.0 * torch.randn(*batch, m, 1, generator=g) @ torch.randn(*batch, 1, n, generator=g)


def _ns_reference(g: torch.Tensor, schedule: str) -> torch.Tensor:
    """U p(S / ||G||_F) V^T from an SVD (float64)."""
    g = g.double()
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    x = s / torch.linalg.matrix_norm(g, ord="fro", keepdim=True).squeeze(-1)
    for a, b, c in NS_COEFFICIENTS[schedule]:
        x = a * x + b * x**3 + c * x**5
    return u @ torch.diag_embed(x) @ vh


# ============================================================================ Linear
@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (5, 5)])
def test_linear_initialize_is_semi_orthogonal_leaf(shape) -> None:
    lin = Linear(*shape)
    w = lin.initialize(generator=_gen(1))
    assert len(w) == 1 and w[0].shape == shape
    assert w[0].is_leaf and w[0].requires_grad and w[0].dtype == torch.get_default_dtype()
    torch.testing.assert_close(torch.linalg.svdvals(w[0]), torch.ones(min(shape)))
    torch.testing.assert_close(lin.initialize(generator=_gen(1))[0], w[0])  # reproducible
    assert lin.initialize(dtype=torch.float64)[0].dtype == torch.float64


def test_linear_forward_accepts_any_leading_shape() -> None:
    lin = Linear(5, 3)
    w = lin.initialize(generator=_gen(0))
    scale = math.sqrt(5 / 3)
    for shape in [(3,), (4, 3), (2, 4, 3)]:
        x = torch.randn(*shape)
        y = lin(x, w)
        assert y.shape == shape[:-1] + (5,)
        torch.testing.assert_close(y, scale * (x.unsqueeze(-1) * w[0].T).sum(-2))
    with pytest.raises(ValueError, match="last dimension 4"):
        lin(torch.randn(2, 4), w)


def test_linear_norm_is_the_rms_operator_norm() -> None:
    lin = Linear(6, 4)
    w = Vector([torch.randn(6, 4, generator=_gen(2))])
    sigma = lin.norm(w)
    assert sigma == pytest.approx(torch.linalg.svdvals(w[0].double())[0].item(), rel=1e-12)
    rms = lambda t: t.square().mean().sqrt().item()  # noqa: E731
    xs = torch.randn(200, 4, generator=_gen(3))
    with torch.no_grad():
        ratios = [rms(lin(x, w)) / rms(x) for x in xs]
        top = torch.linalg.svd(w[0])[2][0]  # top right singular vector
        best = rms(lin(top, w)) / rms(top)
    assert max(ratios) <= sigma * (1 + 1e-5)
    assert best == pytest.approx(sigma, rel=1e-5)


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 6)])
@pytest.mark.parametrize("target", [0.3, 1.0, 5.0])
def test_linear_normalize_hits_the_target_spectral_norm(shape, target) -> None:
    lin = Linear(*shape, power_steps=100)
    update = Vector([_spiked(*shape, seed=4)])
    lin.normalize(update, target_norm=target)
    assert torch.linalg.svdvals(update[0].double())[0].item() == pytest.approx(target, rel=1e-5)
    assert lin.buffers["u"].shape == (shape[0],)


def test_linear_warm_started_power_iteration_tracks_a_slowly_changing_matrix() -> None:
    lin = Linear(8, 8)  # one power step per call (ten on the first)
    g = _gen(5)
    u, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    v, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    base = u @ torch.diag(torch.tensor([1.0, 0.95, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])) @ v.T  # small gap at the top
    drift = torch.randn(8, 8, generator=g)
    errors = []
    for step in range(60):
        update = Vector([base + 1e-4 * step * drift])
        lin.normalize(update, 1.0)
        errors.append(torch.linalg.svdvals(update[0].double())[0].item() - 1.0)
    assert errors[0] > 1e-3  # a cold start is not converged...
    assert 0 <= errors[-1] < 1e-4  # ...but the warm start converges over the calls (and never undershoots)


def test_linear_buffers_round_trip_reproduces_normalize() -> None:
    model = Linear(6, 6) @ ReLU() @ Linear(6, 6)
    for seed in range(3):
        model.normalize(Vector([torch.randn(6, 6, generator=_gen(seed)) for _ in range(2)]))
    state = model.buffers_state_dict()
    assert set(state) == {"0.u", "2.u"}  # atoms() order: Linear, ReLU, Linear
    fresh = Linear(6, 6) @ ReLU() @ Linear(6, 6)
    fresh.load_buffers_state_dict({k: v.clone() for k, v in state.items()})
    a = Vector([torch.randn(6, 6, generator=_gen(9)) for _ in range(2)])
    b = Vector([t.clone() for t in a])
    model.normalize(a)
    fresh.normalize(b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("schedule", sorted(NS_COEFFICIENTS))
@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 6)])
def test_linear_dualize_is_newton_schulz_of_the_gradient(schedule, shape) -> None:
    lin = Linear(*shape, schedule=schedule)
    g = Vector([torch.randn(*shape, generator=_gen(6))])
    before = g[0].clone()
    update = lin.dualize(g, target_norm=2.0)
    assert torch.equal(g[0], before) and update[0] is not g[0]
    torch.testing.assert_close(update[0].double(), 2.0 * _ns_reference(before, schedule), atol=2e-5, rtol=1e-4)
    assert (update[0] * before).sum() > 0


def test_linear_dualize_spectral_norm_is_close_to_the_target() -> None:
    # Gaussian 16 x 64: every singular value is >= 0.05 ||G||_F, where tuned6 maps into [0.9956, 0.9993]
    lin = Linear(16, 64)
    g = Vector([torch.randn(16, 64, generator=_gen(7))])
    s = torch.linalg.svdvals(lin.dualize(g, target_norm=0.5)[0].double())
    assert 0.5 * 0.995 <= s.min().item() and s.max().item() <= 0.5 * 1.0


def test_linear_zero_gradient_gives_zero_update_without_nan() -> None:
    lin = Linear(5, 3)
    zero = Vector([torch.zeros(5, 3)])
    lin.normalize(zero, 1.0)
    assert torch.equal(zero[0], torch.zeros(5, 3))
    assert torch.equal(lin.dualize(Vector([torch.zeros(5, 3)]), 1.0)[0], torch.zeros(5, 3))
    # the warm start survives a zero update: the next one is still normalised
    update = Vector([_spiked(5, 3, seed=8)])
    lin.normalize(update, 1.0)
    assert torch.isfinite(update[0]).all()
    assert torch.linalg.svdvals(update[0])[0].item() == pytest.approx(1.0, rel=1e-2)


def test_zero_mass_atoms_are_frozen() -> None:
    for atom, shape in [(Linear(3, 4, mass=0), (3, 4)), (Embed(3, 5, mass=0), (5, 3)), (Conv2D(2, 2, 3, mass=0), (3, 3, 2, 2))]:
        u = Vector([torch.randn(*shape)])
        atom.normalize(u, 1.0)
        assert torch.count_nonzero(u[0]) == 0
        assert torch.count_nonzero(atom.dualize(Vector([torch.randn(*shape)]), 1.0)[0]) == 0


# ============================================================================ Embed
def test_embed_initialize_rows_have_rms_one_and_forward_is_lookup() -> None:
    emb = Embed(6, 10)
    w = emb.initialize(generator=_gen(0))
    assert w[0].shape == (10, 6) and w[0].is_leaf and w[0].requires_grad
    torch.testing.assert_close(w[0].square().mean(dim=1), torch.ones(10))
    ids = torch.tensor([[1, 3, 3], [9, 0, 2]])
    out = emb(ids, w)
    assert out.shape == (2, 3, 6)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(out[i, j], w[0][ids[i, j]])
    with pytest.raises(TypeError, match="integer token ids"):
        emb(torch.randn(2, 3), w)


def test_embed_normalize_and_dualize_set_each_present_row() -> None:
    emb = Embed(6, 10)
    w = emb.initialize(generator=_gen(0))
    ids = torch.tensor([[1, 3, 3], [9, 0, 2]])
    emb(ids, w).square().sum().backward()
    present = torch.zeros(10, dtype=torch.bool)
    present[ids.flatten()] = True
    for method in ("normalize", "dualize"):
        g = w.grad()
        g = Vector([g[0].clone()])
        if method == "normalize":
            emb.normalize(g, target_norm=0.7)
            update = g
        else:
            update = emb.dualize(g, target_norm=0.7)
        assert torch.isfinite(update[0]).all()
        assert torch.count_nonzero(update[0][~present]) == 0  # absent tokens stay zero
        row_norms = torch.stack([torch.linalg.svdvals(r.unsqueeze(0))[0] for r in update[0][present]])
        torch.testing.assert_close(row_norms, torch.full_like(row_norms, 0.7 * math.sqrt(6)))
        assert emb.norm(update) == pytest.approx(0.7, rel=1e-6)
        # aligned with the gradient row by row
        assert ((update[0] * w.grad()[0]).sum(dim=1)[present] > 0).all()


# ============================================================================ Conv2D
def _conv_brute_force(x: torch.Tensor, w: torch.Tensor, scale: float, padding: int) -> torch.Tensor:
    k = w.shape[0]
    xp = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    n, _, h, wd = xp.shape
    out = torch.zeros(n, w.shape[2], h - k + 1, wd - k + 1)
    for a in range(k):
        for b in range(k):
            patch = xp[:, :, a : a + h - k + 1, b : b + wd - k + 1]
            out += torch.einsum("oi,nihw->nohw", w[a, b], patch)
    return scale * out


def test_conv2d_initialize_and_forward() -> None:
    conv = Conv2D(4, 3, kernel_size=3)
    w = conv.initialize(generator=_gen(0))
    assert w[0].shape == (3, 3, 4, 3) and w[0].requires_grad
    torch.testing.assert_close(torch.linalg.svdvals(w[0]), torch.ones(3, 3, 3))
    x = torch.randn(2, 3, 5, 6, generator=_gen(1))
    y = conv(x, w)
    assert y.shape == (2, 4, 5, 6)  # "same" padding by default
    torch.testing.assert_close(y, _conv_brute_force(x, w[0].detach(), math.sqrt(4 / 3) / 9, 1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expects"):
        conv(torch.randn(2, 5, 4, 4), w)


def test_conv2d_normalize_and_dualize_per_tap() -> None:
    conv = Conv2D(5, 3, kernel_size=3, power_steps=100)
    update = Vector([_spiked(3, 3, 5, 3, seed=2)])
    conv.normalize(update, target_norm=0.4)
    torch.testing.assert_close(torch.linalg.svdvals(update[0].double())[..., 0], torch.full((3, 3), 0.4, dtype=torch.float64), rtol=1e-5, atol=0)
    assert conv.buffers["u"].shape == (3, 3, 5)
    assert conv.norm(update) == pytest.approx(0.4, rel=1e-5)
    g = torch.randn(3, 3, 5, 3, generator=_gen(3))
    dual = conv.dualize(Vector([g]), target_norm=0.4)
    torch.testing.assert_close(dual[0].double(), 0.4 * _ns_reference(g, "tuned6"), atol=2e-5, rtol=1e-4)


def test_conv2d_zero_tap_stays_zero() -> None:
    conv = Conv2D(3, 3, kernel_size=2, power_steps=50)
    u = _spiked(2, 2, 3, 3, seed=4)
    u[0, 1] = 0.0
    update = Vector([u])
    conv.normalize(update, 1.0)
    assert torch.isfinite(update[0]).all() and torch.count_nonzero(update[0][0, 1]) == 0
    s = torch.linalg.svdvals(update[0])[..., 0]
    assert s[0, 0].item() == pytest.approx(1.0, rel=1e-4) and s[1, 1].item() == pytest.approx(1.0, rel=1e-4)


# ============================================================================ constructor errors
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: Linear(0, 3), ValueError, "out_features must be a positive int"),
        (lambda: Linear(3, -2), ValueError, "in_features must be a positive int"),
        (lambda: Linear(3.5, 2), TypeError, "out_features must be a positive int"),
        (lambda: Linear(True, 2), TypeError, "positive int"),
        (lambda: Linear(3, 2, mass=-1), ValueError, "mass must be"),
        (lambda: Linear(3, 2, power_steps=0), ValueError, "power_steps"),
        (lambda: Linear(3, 2, schedule="septic"), ValueError, "unknown Newton–Schulz schedule"),
        (lambda: Embed(0, 10), ValueError, "d_embed"),
        (lambda: Embed(4, "10"), TypeError, "vocab_size"),
        (lambda: Conv2D(3, 3, 0), ValueError, "kernel_size"),
        (lambda: Conv2D(3, 3, 3, padding=-1), ValueError, "padding"),
        (lambda: Mul(0), ValueError, "cannot scale a module by 0"),
        (lambda: SplitIntoHeads(0), ValueError, "num_heads"),
        (lambda: Select("a"), TypeError, "int"),
        (lambda: Flatten(1.0), TypeError, "int"),
        (lambda: MeanSubtract(dim="x"), TypeError, "dim"),
    ],
)
def test_bad_constructor_arguments(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_bad_targets_and_vectors() -> None:
    lin = Linear(3, 3)
    with pytest.raises(ValueError, match="target_norm"):
        lin.normalize(Vector([torch.randn(3, 3)]), -1.0)
    with pytest.raises(ValueError, match="1 tensor"):
        lin.dualize(Vector([torch.randn(3, 3)] * 2))
    with pytest.raises(TypeError, match="Vector"):
        lin.norm([torch.randn(3, 3)])


def test_reprs() -> None:
    assert repr(Linear(3, 4)) == "Linear(3, 4, mass=1)"
    assert repr(Embed(8, 100, mass=0.5)) == "Embed(8, 100, mass=0.5)"
    assert "Conv2D(2, 3, kernel_size=3" in repr(Conv2D(2, 3))
    assert repr(Mul(-2)) == "Mul(-2)"
    assert "Linear(3, 4" in repr(Linear(3, 4) @ ReLU())


# ============================================================================ bonds
def test_bond_sensitivities_and_masses() -> None:
    expected = {
        Identity(): 1.0,
        Flatten(): 1.0,
        Abs(): 1.0,
        Add(): 1.0,
        Mul(-2.5): 2.5,
        Mean(): 1.0,
        AvgPool(): 1.0,
        MeanSubtract(): 1.0,
        RMSDivide(): 1.0,
        LayerNorm(): 1.0,
        ReLU(): 1 / math.sqrt(2),
        ScaledReLU(): 1.0,
        GELU(): 1 / math.sqrt(2),
        ScaledGELU(): 1.0,
        Tanh(): 1.0,
        FunctionalAttention(): 1.0,
        Select(0): 1.0,
        SplitIntoHeads(2): 1.0,
        MergeHeads(): 1.0,
    }
    for bond, s in expected.items():
        assert bond.sensitivity == pytest.approx(s, rel=1e-15), bond
        assert bond.mass == 0 and bond.length == 0 and len(bond.initialize()) == 0


def test_bond_forwards() -> None:
    x = torch.randn(2, 3, 4, 5, generator=_gen(0))
    e = Vector()
    torch.testing.assert_close(Identity()(x, e), x)
    assert Flatten()(x, e).shape == (2, 60)
    torch.testing.assert_close(Abs()(x, e), x.abs())
    torch.testing.assert_close(Add()([x, 2 * x, -x], e), 2 * x)
    with pytest.raises(TypeError, match="list or tuple"):
        Add()(x, e)
    torch.testing.assert_close(Mul(-3)(x, e), -3 * x)
    torch.testing.assert_close(Mean(dim=1)(x, e), x.mean(1))
    torch.testing.assert_close(AvgPool()(x, e), x.mean(dim=(2, 3), keepdim=True))
    ms = MeanSubtract(dim=(1, 2, 3))(x, e)
    torch.testing.assert_close(ms.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-6, rtol=0)
    rd = RMSDivide()(x, e)
    torch.testing.assert_close(rd.square().mean(-1), torch.ones(2, 3, 4))
    ln = LayerNorm()(x, e)
    torch.testing.assert_close(ln, torch.nn.functional.layer_norm(x, (5,), eps=1e-12), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ReLU()(x, e), x.clamp(min=0))
    torch.testing.assert_close(ScaledReLU()(x, e), math.sqrt(2) * x.clamp(min=0))
    torch.testing.assert_close(GELU()(x, e), torch.nn.functional.gelu(x))
    torch.testing.assert_close(ScaledGELU()(x, e), math.sqrt(2) * torch.nn.functional.gelu(x))
    torch.testing.assert_close(Tanh()(x, e), torch.tanh(x))
    assert Select(0)([x, 2 * x], e) is x
    torch.testing.assert_close(Select(-1)([x, 2 * x], e), 2 * x)
    with pytest.raises(IndexError):
        Select(2)([x, x], e)
    h = torch.randn(2, 7, 6)
    split = SplitIntoHeads(3)(h, e)
    assert split.shape == (2, 3, 7, 2)
    torch.testing.assert_close(split[:, 1], h[..., 2:4])
    torch.testing.assert_close(MergeHeads()(split, e), h)
    with pytest.raises(ValueError, match="divisible"):
        SplitIntoHeads(4)(h, e)
    torch.testing.assert_close(Enumerate()(torch.zeros(2, 5, dtype=torch.long), e), torch.arange(5))
    with pytest.raises(ValueError, match="context length 4"):
        Enumerate(4)(torch.zeros(2, 5, dtype=torch.long), e)


@pytest.mark.parametrize("causal", [True, False])
def test_functional_attention_matches_a_brute_force_loop(causal: bool) -> None:
    g = _gen(1)
    q, k, v = torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 4, generator=g), torch.randn(2, 3, 5, 6, generator=g)
    out = FunctionalAttention(causal)([q, k, v], Vector())
    expected = torch.zeros(2, 3, 5, 6)
    for t in range(5):
        keys = range(t + 1) if causal else range(5)
        scores = torch.stack([(q[:, :, t] * k[:, :, s]).sum(-1) / 4 for s in keys], dim=-1)  # scale 1/d_head
        p = scores.softmax(-1)
        expected[:, :, t] = sum(p[..., i : i + 1] * v[:, :, s] for i, s in enumerate(keys))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="takes 3 inputs"):
        FunctionalAttention()([q, k], Vector())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_atoms_on_cuda() -> None:
    for atom, x in [
        (Linear(4, 3), torch.randn(2, 3, device="cuda")),
        (Embed(4, 7), torch.tensor([[1, 2]], device="cuda")),
        (Conv2D(4, 3), torch.randn(1, 3, 5, 5, device="cuda")),
    ]:
        w = atom.initialize(device="cuda", generator=torch.Generator(device="cuda").manual_seed(0))
        assert w.device.type == "cuda"
        atom(x, w).square().sum().backward()
        g = w.grad()
        atom.normalize(g)
        assert atom.norm(g) == pytest.approx(1.0, rel=0.05)
        assert atom.dualize(w.grad())[0].device.type == "cuda"
