"""Tests of the weight-tied ElmanRNN atom: agreement with torch.nn.RNN, and the tied modular norm."""

from __future__ import annotations

import io
import math

import pytest
import torch

from modula_core.abstract import Atom, Bond, CompositeModule, TupleModule
from modula_core.recurrent import ElmanRNN, unrolled_gain
from modula_core.vector import Vector

torch.set_num_threads(1)

H, I, T, B = 6, 3, 5, 4


def _rand_vector(w: Vector, generator: torch.Generator) -> Vector:
    return Vector(torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in w)


def _rms(v: torch.Tensor) -> torch.Tensor:
    """RMS over the last dimension."""
    return v.square().mean(-1).sqrt()


def _exact_svd_norm(rnn: ElmanRNN, w: Vector) -> float:
    """Independent evaluation of the tied norm from singular values (not via rnn.norm)."""
    h, i = rnn.hidden, rnn.input
    parts = [math.sqrt(i / h) * torch.linalg.svdvals(w[0])[0].item(), torch.linalg.svdvals(w[1])[0].item()]
    shares = [0.5, 0.5]
    if rnn.bias:
        parts += [w[2].norm().item() / math.sqrt(h), w[3].norm().item() / math.sqrt(h)]
        shares = [1 / 3, 1 / 3, 1 / 6, 1 / 6]
    s = rnn.recurrent_sensitivity
    gain = sum(s**k for k in range(rnn.time_steps()))
    return max(gain * p / c for p, c in zip(parts, shares))


# --------------------------------------------------------------------------- agreement with nn.RNN
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("with_h0", [False, True])
def test_outputs_and_gradients_match_nn_rnn(dtype, bias, nonlinearity, fused, with_h0):
    gen = torch.Generator().manual_seed(0)
    rnn = ElmanRNN(H, I, nonlinearity=nonlinearity, bias=bias, fused=fused)
    w = rnn.initialize(dtype=dtype, generator=gen)
    if bias:  # non-zero biases so that their gradients and effect are tested
        with torch.no_grad():
            w[2].copy_(0.3 * torch.randn(H, generator=gen, dtype=dtype))
            w[3].copy_(0.3 * torch.randn(H, generator=gen, dtype=dtype))
    ref = torch.nn.RNN(I, H, nonlinearity=nonlinearity, bias=bias).to(dtype)
    with torch.no_grad():
        for p, t in zip(ref._flat_weights, w):
            p.copy_(t)
    x = torch.randn(T, B, I, generator=gen, dtype=dtype, requires_grad=True)
    h0 = torch.randn(B, H, generator=gen, dtype=dtype, requires_grad=True)
    cot = torch.randn(T, B, H, generator=gen, dtype=dtype)

    out = rnn((x, h0), w) if with_h0 else rnn(x, w)
    ref_out, ref_hn = ref(x, h0.unsqueeze(0)) if with_h0 else ref(x)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[-1], ref_hn[0], rtol=1e-5, atol=1e-5)

    inputs = [x, h0] if with_h0 else [x]
    grads = torch.autograd.grad((out * cot).sum(), list(w) + inputs)
    ref_grads = torch.autograd.grad((ref_out * cot).sum(), list(ref._flat_weights) + inputs)
    for g, rg in zip(grads, ref_grads):
        torch.testing.assert_close(g, rg, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_fused_and_loop_paths_agree(nonlinearity):
    gen = torch.Generator().manual_seed(1)
    rnn = ElmanRNN(H, I, nonlinearity=nonlinearity, bias=True)
    w = rnn.initialize(dtype=torch.float64, generator=gen)
    x = torch.randn(7, 2, I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, H, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(rnn.forward((x, h0), w, fused=True), rnn.forward((x, h0), w, fused=False), rtol=1e-12, atol=1e-12)


def test_identity_nonlinearity_is_a_linear_recurrence():
    gen = torch.Generator().manual_seed(2)
    rnn = ElmanRNN(H, I, nonlinearity="identity")
    w = rnn.initialize(dtype=torch.float64, generator=gen)
    x = torch.randn(4, 2, I, generator=gen, dtype=torch.float64)
    h = torch.zeros(2, H, dtype=torch.float64)
    for t in range(4):  # brute-force loop of the recurrence
        h = h @ w[1].T + x[t] @ w[0].T
    torch.testing.assert_close(rnn(x, w)[-1], h)


# --------------------------------------------------------------------------- validation
def test_bad_inputs_raise_clear_errors():
    rnn = ElmanRNN(H, I, steps=T)
    w = rnn.initialize(dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        rnn(torch.zeros(B, I, dtype=torch.float64), w)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        rnn(torch.zeros(T, B, I + 1, dtype=torch.float64), w)
    with pytest.raises(ValueError, match="h0"):
        rnn((torch.zeros(T, B, I, dtype=torch.float64), torch.zeros(B + 1, H, dtype=torch.float64)), w)
    with pytest.raises(ValueError, match="pair"):
        rnn((torch.zeros(T, B, I, dtype=torch.float64),), w)
    with pytest.raises(TypeError, match="dtype"):
        rnn(torch.zeros(T, B, I, dtype=torch.float32), w)
    with pytest.raises(ValueError, match="weight tensors"):
        rnn(torch.zeros(T, B, I, dtype=torch.float64), w[:1])
    with pytest.raises(ValueError, match="shape"):
        rnn.forward(torch.zeros(T, B, I, dtype=torch.float64), Vector([w[1], w[1]]))
    with pytest.raises(ValueError, match="nonlinearity"):
        ElmanRNN(H, I, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden"):
        ElmanRNN(0, I)
    with pytest.raises(ValueError, match="steps"):
        ElmanRNN(H, I, steps=0)
    with pytest.raises(ValueError, match="recurrent_sensitivity"):
        ElmanRNN(H, I, recurrent_sensitivity=-1.0)
    with pytest.raises(ValueError, match="strength"):
        rnn.regularize(w, 2.0)
    with pytest.raises(ValueError, match="target_norm"):
        rnn.normalize(w.clone(), -1.0)


def test_sequence_length_comes_from_steps_or_last_training_forward():
    rnn = ElmanRNN(H, I)
    w = rnn.initialize(dtype=torch.float64)
    with pytest.raises(ValueError, match="steps="):
        rnn.norm(w)
    rnn(torch.zeros(7, 1, I, dtype=torch.float64), w)
    assert rnn.time_steps() == 7
    with torch.no_grad():  # evaluation passes do not change the training length
        rnn(torch.zeros(20, 1, I, dtype=torch.float64), w)
    assert rnn.time_steps() == 7
    assert ElmanRNN(H, I, steps=3).time_steps() == 3


# --------------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (5, 5)])
def test_initialize_orthogonal_with_rms_norm_one(shape):
    hidden, inp = shape
    rnn = ElmanRNN(hidden, inp, bias=True, steps=4, mass=2.5)
    w = rnn.initialize(dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert rnn.length == len(w) == 4 and rnn.mass == 2.5 and rnn.sensitivity == 1.0
    assert all(t.requires_grad and t.is_leaf for t in w)
    sv_ih = torch.linalg.svdvals(w[0])
    torch.testing.assert_close(sv_ih, torch.full_like(sv_ih, math.sqrt(hidden / inp)))
    sv_hh = torch.linalg.svdvals(w[1])
    torch.testing.assert_close(sv_hh, torch.ones_like(sv_hh))
    assert torch.count_nonzero(w[2]) == 0 and torch.count_nonzero(w[3]) == 0
    torch.testing.assert_close(torch.tensor(rnn.part_norms(w)[:2], dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    again = rnn.initialize(dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(w, again))


def test_initialized_states_have_rms_order_one():
    """An RMS-1 input through the RMS-1-norm init gives states of RMS at most ~1 (tanh)."""
    rnn = ElmanRNN(64, 4, nonlinearity="tanh")
    w = rnn.initialize(dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    x = torch.randn(10, 8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x = x / _rms(x).unsqueeze(-1)
    r = _rms(rnn(x, w))
    assert 0.2 < r.mean().item() <= 1.0


# --------------------------------------------------------------------------- the tied norm
def test_unrolled_gain_known_values():
    assert unrolled_gain(1, 0.3) == 1.0
    assert unrolled_gain(5, 1.0) == 5.0
    assert unrolled_gain(3, 0.5) == pytest.approx(1.75)
    assert unrolled_gain(12, 0.7) == pytest.approx(sum(0.7**k for k in range(12)))
    assert unrolled_gain(4, 2.0) == pytest.approx(15.0)
    with pytest.raises(ValueError):
        unrolled_gain(0, 1.0)


def _h_T_tangent(rnn: ElmanRNN, w: Vector, dw: Vector, inputs) -> torch.Tensor:
    """First-order change of all hidden states along dw (forward-mode AD), (T, B, H)."""
    return torch.func.jvp(lambda *ts: rnn.forward(inputs, Vector(ts), fused=False), tuple(t.detach() for t in w), tuple(dw))[1]


@pytest.mark.parametrize("s", [1.0, 0.7])
def test_tight_case_linear_rnn_reaches_the_budget(s):
    """Linear RNN with W_hh = s I, W_ih = I and a drive holding h_t = h0: the bound is attained.

    dW_hh = tau I with tau the tied W_hh target: h_T moves by tau * S_T(s) * rms(h0) = c_hh * target
    exactly (for s = 1 this is x = 0, ||dW_hh|| = (target/2) / T). An untied budget (tau = target/2)
    would overshoot by S_T; a rule using T instead of S_T(s) would miss for s = 0.7.
    """
    n, steps, target = 5, 6, 0.2
    rnn = ElmanRNN(n, n, nonlinearity="identity", steps=steps, recurrent_sensitivity=s)
    w = Vector([torch.eye(n, dtype=torch.float64), s * torch.eye(n, dtype=torch.float64)])
    h0 = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    h0 = h0 / _rms(h0).unsqueeze(-1)
    x = ((1 - s) * h0).expand(steps, 3, n).contiguous()
    states = rnn.forward((x, h0), w, fused=False)
    torch.testing.assert_close(states, h0.expand_as(states))  # the drive holds ||h_t|| = 1

    update = Vector([torch.zeros(n, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
    rnn.normalize(update, target)
    tau = rnn.part_targets(target)[1]
    assert tau == pytest.approx(0.5 * target / unrolled_gain(steps, s))
    torch.testing.assert_close(update[1], tau * torch.eye(n, dtype=torch.float64))
    assert rnn.norm(update) == pytest.approx(target)

    dh = _h_T_tangent(rnn, w, update, (x, h0))
    torch.testing.assert_close(_rms(dh[-1]), torch.full((3,), 0.5 * target, dtype=torch.float64))
    # finite differences agree with the tangent (first order)
    eps = 1e-6
    moved = rnn.forward((x, h0), w + eps * update, fused=False)
    torch.testing.assert_close((moved[-1] - states[-1]) / eps, dh[-1], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("bias", [False, True])
def test_bound_holds_for_random_tanh_rnns(bias):
    """For ||W_hh|| <= 1, RMS(x_t) <= 1, tanh states: ||d h_t|| <= ||dw|| (tied norm) for all t."""
    gen = torch.Generator().manual_seed(7)
    steps, target, worst = 8, 0.1, 0.0
    for draw in range(6):
        rnn = ElmanRNN(H, I, nonlinearity="tanh", bias=bias, steps=steps)
        w = rnn.initialize(dtype=torch.float64, generator=gen)
        with torch.no_grad():
            a = torch.randn(H, H, generator=gen, dtype=torch.float64)
            w[1].copy_(a / torch.linalg.matrix_norm(a, ord=2) * (0.5 + 0.5 * torch.rand((), generator=gen, dtype=torch.float64)))
            if bias:
                w[2].copy_(torch.randn(H, generator=gen, dtype=torch.float64))
                w[3].copy_(torch.randn(H, generator=gen, dtype=torch.float64))
        x = torch.randn(steps, B, I, generator=gen, dtype=torch.float64)
        x = x / _rms(x).unsqueeze(-1)
        h0 = 2 * torch.rand(B, H, generator=gen, dtype=torch.float64) - 1
        update = _rand_vector(w, gen)
        rnn.normalize(update, target)
        exact = rnn.norm(update)
        assert exact == pytest.approx(target, rel=0.05)  # power iteration: a few percent at most
        dh = _h_T_tangent(rnn, w, update, (x, h0))
        change = _rms(dh).max().item()
        assert change <= exact * (1 + 1e-9)
        worst = max(worst, change / exact)
    assert worst > 0.01  # the tangent is not trivially zero


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(6, 3), (4, 9)])
def test_normalize_sets_the_modular_norm(bias, shape):
    hidden, inp = shape
    rnn = ElmanRNN(hidden, inp, bias=bias, steps=7, recurrent_sensitivity=0.8)
    gen = torch.Generator().manual_seed(8)
    w = rnn.initialize(dtype=torch.float64, generator=gen)
    for target in (0.05, 1.0, 3.0):
        u = _rand_vector(w, gen)
        for _ in range(30):  # warm-started power iteration converges on a fixed update
            rnn.normalize(u, target)
        assert _exact_svd_norm(rnn, u) == pytest.approx(target, rel=1e-3)
        assert rnn.norm(u) == pytest.approx(target, rel=1e-3)
        # every part sits at its tied target, not only the largest
        for n, tau in zip(rnn.part_norms(u), rnn.part_targets(target)):
            assert n == pytest.approx(tau, rel=1e-3)
    zero = w.zeros_like()
    rnn.normalize(zero, 1.0)
    assert all(torch.count_nonzero(t) == 0 for t in zero)


@pytest.mark.parametrize("bias", [False, True])
def test_dualize_sets_the_modular_norm_and_aligns(bias):
    rnn = ElmanRNN(H, I, bias=bias, steps=5)
    gen = torch.Generator().manual_seed(9)
    w = rnn.initialize(dtype=torch.float64, generator=gen)
    g = _rand_vector(w, gen)
    target = 0.3
    d = rnn.dualize(g, target)
    assert d is not g and len(d) == len(g)
    # Newton-Schulz (tuned6) maps singular values into [0.9956, 0.9993]: the norm never exceeds target
    assert 0.995 * target <= _exact_svd_norm(rnn, d) <= target * (1 + 1e-9)
    for n, tau in zip(rnn.part_norms(d), rnn.part_targets(target)):
        assert 0.995 * tau <= n <= tau * (1 + 1e-12)
    # the matrices are the scaled polar factors of the gradient (computed here by SVD)
    for k, scale in ((0, math.sqrt(H / I)), (1, 1.0)):
        u, _, vh = torch.linalg.svd(g[k], full_matrices=False)
        polar = u @ vh * scale * rnn.part_targets(target)[k]
        assert (d[k] - polar).norm() / polar.norm() < 1e-2
    assert d.dot(g).item() > 0
    z = rnn.dualize(w.zeros_like(), 1.0)
    assert all(torch.isfinite(t).all() and torch.count_nonzero(t) == 0 for t in z)


class _Probe(Atom):
    """Test atom that records the target the composition rule hands it."""

    def __init__(self, mass: float, sensitivity: float) -> None:
        super().__init__(mass=mass, sensitivity=sensitivity)
        self.length = 0
        self.received: float | None = None

    def normalize(self, w, target_norm=1.0):
        self.received = target_norm


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("s", [1.0, 0.7])
def test_tied_target_is_the_unrolled_budget_folded(bias, s):
    """Unroll T untied cells with Modula's own composition/tuple rules and fold their budgets.

    Each cell is ``phi @ (W_ih, W_hh[, (b_ih, b_hh)])`` with probe atoms of equal mass (x enters from
    outside the chain, so its probe has sensitivity 0; W_hh carries the hidden sensitivity s). The
    composition gives copy t a budget b_t whose effect on h_T is b_t * s^(T-t). The tied target tau
    must have the same total first-order effect: tau * S_T(s) == sum_t b_t * s^(T-t), i.e. tau is
    the s^(T-t)-weighted mean of the per-step budgets (b/T for s = 1).
    """
    steps, target, mass = 6, 0.9, 2.0
    cells, probes = [], []
    for _ in range(steps):
        p_ih, p_hh = _Probe(mass / steps, 0.0), _Probe(mass / steps, s)
        parts = [p_ih, p_hh]
        if bias:
            p_b1, p_b2 = _Probe(mass / steps / 2, 0.0), _Probe(mass / steps / 2, 0.0)
            parts.append(TupleModule(p_b1, p_b2))
        cells.append(Bond(1.0) @ TupleModule(*parts))
        probes.append([p_ih, p_hh] + ([p_b1, p_b2] if bias else []))
    unrolled = cells[0]
    for cell in cells[1:]:
        unrolled = CompositeModule(cell, unrolled)
    assert unrolled.sensitivity == pytest.approx(s**steps)
    unrolled.normalize(Vector(), target)

    rnn = ElmanRNN(H, I, bias=bias, steps=steps, recurrent_sensitivity=s, mass=mass)
    tied = rnn.part_targets(target)
    weights = [s ** (steps - 1 - t) for t in range(steps)]  # propagation to h_T of step t (0-based)
    for p in range(len(tied)):
        budgets = [probes[t][p].received for t in range(steps)]
        effect = sum(b * wt for b, wt in zip(budgets, weights))
        assert tied[p] * unrolled_gain(steps, s) == pytest.approx(effect, rel=1e-12)
        assert tied[p] == pytest.approx(effect / sum(weights), rel=1e-12)
    if s == 1.0:
        assert all(tied[1] == pytest.approx(probes[t][1].received) for t in range(steps))  # b / T each

    # The same fold, measured on a linear RNN: untied per-step updates dW_t = b_t I (one per step,
    # run by a brute-force loop) and the tied update tau I move h_T by the same amount.
    n = 4
    h0 = torch.randn(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    h0 = h0 / _rms(h0).unsqueeze(-1)
    drive = (1 - s) * h0
    budgets_hh = torch.tensor([probes[t][1].received for t in range(steps)], dtype=torch.float64)

    def untied(scales: torch.Tensor) -> torch.Tensor:
        h = h0
        for t in range(steps):
            h = (s + scales[t]) * h + drive
        return h

    _, d_untied = torch.func.jvp(untied, (torch.zeros(steps, dtype=torch.float64),), (budgets_hh,))
    _, d_tied = torch.func.jvp(untied, (torch.zeros(steps, dtype=torch.float64),), (torch.full((steps,), tied[1], dtype=torch.float64),))
    torch.testing.assert_close(_rms(d_untied), _rms(d_tied))
    torch.testing.assert_close(_rms(d_tied), torch.full((2,), tied[1] * unrolled_gain(steps, s), dtype=torch.float64))


# --------------------------------------------------------------------------- composition
class _Last(Bond):
    """Select the last hidden state, with a declared sensitivity."""

    def __init__(self, sensitivity: float = 1.0) -> None:
        super().__init__(sensitivity)

    def forward(self, x, w):
        return x[-1]


def test_composes_with_bonds_and_splits_targets():
    rnn = ElmanRNN(H, I, nonlinearity="tanh", steps=T, mass=1.0)
    model = _Last(2.0) @ rnn
    assert model.length == rnn.length and model.mass == 1.0 and model.sensitivity == 2.0
    gen = torch.Generator().manual_seed(11)
    w = model.initialize(dtype=torch.float64, generator=gen)
    x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(model((x, h0), w), rnn((x, h0), w)[-1])

    u = _rand_vector(w, gen)
    for _ in range(30):
        model.normalize(u, 1.0)
    assert rnn.norm(u) == pytest.approx(0.5, rel=1e-3)  # target / sensitivity of what follows
    assert model.norm(u) == pytest.approx(1.0, rel=1e-3)

    # a tuple next to another atom: the RNN gets its mass share
    probe = _Probe(3.0, 1.0)
    pair = TupleModule(rnn, probe)
    v = _rand_vector(w, gen)
    for _ in range(30):
        pair.normalize(v, 2.0)
    assert rnn.norm(v) == pytest.approx(2.0 * 1.0 / 4.0, rel=1e-3)
    assert probe.received == pytest.approx(2.0 * 3.0 / 4.0)


def test_power_iteration_state_round_trips_through_checkpoints():
    rnn = _Last() @ ElmanRNN(H, I, steps=T)
    gen = torch.Generator().manual_seed(12)
    w = rnn.initialize(dtype=torch.float64, generator=gen)
    u = _rand_vector(w, gen)
    rnn.normalize(u, 1.0)
    state = rnn.buffers_state_dict()
    assert sorted(k.split(".", 1)[1] for k in state) == ["u_hh", "u_ih"]
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)

    fresh = _Last() @ ElmanRNN(H, I, steps=T)
    fresh.load_buffers_state_dict(torch.load(buf, weights_only=True))
    nxt = _rand_vector(w, gen)
    a, b = nxt.clone(), nxt.clone()
    rnn.normalize(a, 1.0)
    fresh.normalize(b, 1.0)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    cold = _Last() @ ElmanRNN(H, I, steps=T)
    c = nxt.clone()
    cold.normalize(c, 1.0)
    assert not all(torch.equal(p, q) for p, q in zip(a, c))  # the warm start matters


def test_normalize_does_not_consume_the_global_random_stream():
    rnn = ElmanRNN(H, I, steps=T)
    w = rnn.initialize(dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    rnn.normalize(_rand_vector(w, torch.Generator().manual_seed(14)), 1.0)
    assert torch.equal(torch.rand(3), expected)


def test_regularize_is_decoupled_decay():
    rnn = ElmanRNN(H, I, bias=True, steps=T)
    w = rnn.initialize(dtype=torch.float64, generator=torch.Generator().manual_seed(15))
    before = w.clone()
    rnn.regularize(w, 0.1)
    for a, b in zip(w, before):
        torch.testing.assert_close(a, 0.9 * b)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_cuda_fused_matches_loop(nonlinearity):
    rnn = ElmanRNN(H, I, nonlinearity=nonlinearity, bias=True, steps=T)
    w = rnn.initialize(device="cuda", dtype=torch.float64)
    x = torch.randn(T, B, I, device="cuda", dtype=torch.float64)
    torch.testing.assert_close(rnn.forward(x, w, fused=True), rnn.forward(x, w, fused=False))
    u = w.zeros_like() + 1.0
    rnn.normalize(u, 1.0)
    assert rnn.norm(u) == pytest.approx(1.0, rel=1e-3)
