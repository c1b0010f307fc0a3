"""Tests of the modular optimisers: update norm, directions, training, checkpoints, schedulers."""

from __future__ import annotations

import io
import math

import pytest
import torch

from modula_core.abstract import Bond
from modula_core.optim import OPTIMIZERS, ModularAdam, ModularSGD
from modula_core.recurrent import ElmanRNN
from modula_core.vector import Vector

torch.set_num_threads(1)

T, HID, INP = 6, 8, 2


class _Last(Bond):
    """Read out the last hidden state."""

    def forward(self, x, w):
        return x[-1]


def _task(seed: int = 0, bias: bool = False, power_steps: int = 2):
    rnn = ElmanRNN(HID, INP, nonlinearity="tanh", bias=bias, steps=T, power_steps=power_steps)
    model = _Last() @ rnn
    gen = torch.Generator().manual_seed(seed)
    w = model.initialize(dtype=torch.float64, generator=gen)
    return rnn, model, w, gen


def _batch(gen: torch.Generator, n: int = 32):
    x = torch.randn(T, n, INP, generator=gen, dtype=torch.float64)
    y = 0.3 * torch.tanh(x[..., 0].mean(0) + x[-1, :, 1])
    return x, y


def _loss(model, w, x, y):
    return (model(x, w).mean(-1) - y).square().mean()


def _train(model, w, opt, gen, steps: int) -> list[float]:
    losses = []
    for _ in range(steps):
        x, y = _batch(gen)
        loss = _loss(model, w, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _exact_norm(rnn: ElmanRNN, d: Vector) -> float:
    """Tied norm from exact singular values, written out independently of rnn.norm."""
    s_t = sum(rnn.recurrent_sensitivity**k for k in range(T))
    ih = math.sqrt(INP / HID) * torch.linalg.svdvals(d[0])[0].item()
    hh = torch.linalg.svdvals(d[1])[0].item()
    parts, shares = [ih, hh], [0.5, 0.5]
    if rnn.bias:
        parts += [d[2].norm().item() / math.sqrt(HID), d[3].norm().item() / math.sqrt(HID)]
        shares = [1 / 3, 1 / 3, 1 / 6, 1 / 6]
    return max(s_t * p / c for p, c in zip(parts, shares))


OPTS = [
    ("sgd", lambda w, m, lr: ModularSGD(w, m, lr=lr)),
    ("sgd-momentum", lambda w, m, lr: ModularSGD(w, m, lr=lr, momentum=0.9)),
    ("adam", lambda w, m, lr: ModularAdam(w, m, lr=lr)),
    ("adam-dualize", lambda w, m, lr: ModularAdam(w, m, lr=lr, dualize=True)),
    ("sgd-dualize", lambda w, m, lr: ModularSGD(w, m, lr=lr, momentum=0.5, dualize=True)),
]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name,make", OPTS, ids=[o[0] for o in OPTS])
def test_every_update_has_modular_norm_lr(name, make, bias):
    rnn, model, w, gen = _task(bias=bias, power_steps=60)
    lr = 0.07
    opt = make(w, model, lr)
    for _ in range(4):
        x, y = _batch(gen)
        opt.zero_grad()
        _loss(model, w, x, y).backward()
        before = w.clone()
        opt.step()
        diff = before - w
        exact = _exact_norm(rnn, diff)
        assert model.norm(diff) == pytest.approx(exact, rel=1e-9)
        if "dualize" in name:
            # Newton-Schulz (tuned6) maps singular values into [0.9956, 0.9993]: never above lr
            assert 0.995 * lr <= exact <= lr * (1 + 1e-9)
        else:
            assert exact == pytest.approx(lr, rel=1e-3)


def test_default_power_iteration_tracks_the_norm_within_a_few_percent():
    rnn, model, w, gen = _task()
    opt = ModularAdam(w, model, lr=0.05)
    ratios = []
    for _ in range(20):
        x, y = _batch(gen)
        opt.zero_grad()
        _loss(model, w, x, y).backward()
        before = w.clone()
        opt.step()
        ratios.append(model.norm(before - w) / 0.05)
    assert min(ratios) > 0.999  # power iteration never overestimates sigma
    assert max(ratios[5:]) < 1.05


def test_sgd_directions_match_a_hand_computation():
    """SGD: each matrix update is parallel to (momentum-summed) gradient at its tied target."""
    rnn, model, w, gen = _task(power_steps=60)
    lr, mu = 0.05, 0.9
    opt = ModularSGD(w, model, lr=lr, momentum=mu)
    buf = None
    for _ in range(3):
        x, y = _batch(gen)
        opt.zero_grad()
        _loss(model, w, x, y).backward()
        g = [t.grad.clone() for t in w]
        buf = g if buf is None else [mu * b + gi for b, gi in zip(buf, g)]
        before = w.clone()
        opt.step()
        diff = before - w
        for k, (d, b, tau) in enumerate(zip(diff, buf, rnn.part_targets(lr))):
            cos = (d * b).sum() / (d.norm() * b.norm())
            assert cos.item() == pytest.approx(1.0, abs=1e-12)
            scale = math.sqrt(INP / HID) if k == 0 else 1.0
            assert scale * torch.linalg.svdvals(d)[0].item() == pytest.approx(tau, rel=1e-3)
        assert w[0].grad is not None and torch.equal(w[0].grad, g[0])  # gradients are not modified


def test_adam_direction_matches_a_hand_computation():
    rnn, model, w, gen = _task(power_steps=60)
    lr, (b1, b2), eps = 0.05, (0.8, 0.95), 1e-3  # eps of the order of sqrt(v): tests its placement
    opt = ModularAdam(w, model, lr=lr, betas=(b1, b2), eps=eps)
    m = [torch.zeros_like(t) for t in w]
    v = [torch.zeros_like(t) for t in w]
    for step in range(1, 4):
        x, y = _batch(gen)
        opt.zero_grad()
        _loss(model, w, x, y).backward()
        before = w.clone()
        opt.step()
        diff = before - w
        for k, t in enumerate(w):
            g = t.grad
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            direction = (m[k] / (1 - b1**step)) / ((v[k] / (1 - b2**step)).sqrt() + eps)
            cos = (diff[k] * direction).sum() / (diff[k].norm() * direction.norm())
            assert cos.item() == pytest.approx(1.0, abs=1e-12)


def test_weight_decay_is_decoupled_and_applied_after_the_update():
    lr, wd = 0.05, 0.3
    runs = []
    for decay in (0.0, wd):
        rnn, model, w, gen = _task(seed=3)
        opt = ModularAdam(w, model, lr=lr, weight_decay=decay)
        x, y = _batch(gen)
        _loss(model, w, x, y).backward()
        opt.step()
        runs.append(w)
    for plain, decayed in zip(*runs):
        torch.testing.assert_close(decayed, plain * (1 - lr * wd), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,make", OPTS, ids=[o[0] for o in OPTS])
def test_loss_falls_on_a_tiny_rnn_regression(name, make):
    _, model, w, gen = _task()
    opt = make(w, model, 0.1)
    losses = _train(model, w, opt, gen, 100)
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < 0.25 * first, (first, last)


@pytest.mark.parametrize("make", [lambda w, m: ModularAdam(w, m, lr=0.05, weight_decay=0.1), lambda w, m: ModularSGD(w, m, lr=0.05, momentum=0.9)])
def test_checkpoint_round_trip_continues_bit_identically(make):
    _, model, w, gen = _task(seed=5)
    opt = make(w, model)
    _train(model, w, opt, gen, 3)
    buf = io.BytesIO()
    torch.save({"weights": w.state_dict(), "optimizer": opt.state_dict(), "rng": gen.get_state()}, buf)
    _train(model, w, opt, gen, 3)
    uninterrupted = w.clone()

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    assert any(k.endswith("u_hh") for k in saved["optimizer"]["module_buffers"])
    _, model2, w2, gen2 = _task(seed=99)
    w2.load_state_dict(saved["weights"])
    opt2 = make(w2, model2)
    opt2.load_state_dict(saved["optimizer"])
    gen2.set_state(saved["rng"])
    _train(model2, w2, opt2, gen2, 3)
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted, w2))

    # without the module buffers (power-iteration warm starts) the continuation is not identical
    _, model3, w3, gen3 = _task(seed=99)
    w3.load_state_dict(saved["weights"])
    opt3 = make(w3, model3)
    opt3.load_state_dict({k: v for k, v in saved["optimizer"].items() if k != "module_buffers"})
    gen3.set_state(saved["rng"])
    _train(model3, w3, opt3, gen3, 3)
    assert not all(torch.equal(a, b) for a, b in zip(uninterrupted, w3))


def test_reduce_lr_on_plateau_changes_lr_and_the_update_norm_follows():
    rnn, model, w, gen = _task(power_steps=60)
    opt = ModularSGD(w, model, lr=0.08)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    sched.step(1.0)
    sched.step(2.0)  # no improvement: lr halves
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04)
    x, y = _batch(gen)
    _loss(model, w, x, y).backward()
    before = w.clone()
    opt.step()
    assert model.norm(before - w) == pytest.approx(0.04, rel=1e-3)


def test_torch_optimizer_machinery_works():
    _, model, w, gen = _task()
    opt = ModularAdam(w, model, lr=0.05)
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(1))
    x, y = _batch(gen)

    def closure():
        opt.zero_grad()
        loss = _loss(model, w, x, y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and calls == [1]
    opt.zero_grad()
    assert all(t.grad is None for t in w)
    opt.step()  # no gradients: a zero direction stays zero, no NaN
    assert all(torch.isfinite(t).all() for t in w)
    assert OPTIMIZERS["modular_adam"] is ModularAdam and OPTIMIZERS["modular_sgd"] is ModularSGD


def test_bad_arguments_raise_clear_errors():
    _, model, w, _ = _task()
    with pytest.raises(ValueError, match="weight tensors"):
        ModularSGD(list(w)[:1], model, lr=0.1)
    with pytest.raises(TypeError, match="Module"):
        ModularSGD(w, "model", lr=0.1)
    with pytest.raises(TypeError, match="parameter groups"):
        ModularAdam([{"params": list(w)}], model, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        ModularSGD(w, model, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        ModularSGD(w, model, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        ModularAdam(w, model, lr=0.1, betas=(0.9,))
    with pytest.raises(ValueError, match="eps"):
        ModularAdam(w, model, lr=0.1, eps=0.0)
    with pytest.raises(TypeError, match="dualize"):
        ModularAdam(w, model, lr=0.1, dualize="yes")
    opt = ModularSGD(w, model, lr=0.1)
    with pytest.raises(ValueError, match="one parameter group"):
        opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})
