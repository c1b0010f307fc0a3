"""Tests for moduli.pruning: masks, schedules, the pruner, lottery reset, reports, torch interop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from moduli.pruning import (
    CubicSchedule,
    LinearRamp,
    OneShot,
    Pruner,
    from_torch_prune,
    lottery_reset,
    magnitude_masks,
    moduli_masks,
    random_masks_like,
    remove_torch_prune,
    select_parameters,
    sparsity_report,
    to_torch_prune,
)

torch.set_num_threads(1)


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(7, 5, generator=g),
        "b": torch.randn(11, 3, generator=g) * 3.0,
        "c": torch.randn(4, generator=g) * 0.5,
    }


def _zeros(mask: torch.Tensor) -> int:
    return int((~mask).sum())


def _brute_force_global(weights, k, previous=None):
    """Pruned (name, flat index) set: previous zeros first, then smallest |w| by concat order."""
    entries = []
    for name, w in weights.items():
        prev = previous.get(name) if previous else None
        for i, value in enumerate(w.reshape(-1).tolist()):
            forced = prev is not None and not bool(prev.reshape(-1)[i])
            entries.append((0 if forced else 1, abs(value), len(entries), name, i))
    entries.sort()
    return {(name, i) for *_, name, i in entries[:k]}


def _pruned_set(masks):
    return {
        (name, i)
        for name, m in masks.items()
        for i, kept in enumerate(m.reshape(-1).tolist())
        if not kept
    }


def _small_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


# ----------------------------------------------------------------------------- magnitude


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.77, 0.99])
def test_magnitude_global_exact_count_and_brute_force(sparsity):
    weights = _weights()
    n = sum(w.numel() for w in weights.values())
    masks = magnitude_masks(weights, sparsity)
    assert all(masks[k].shape == weights[k].shape and masks[k].dtype == torch.bool for k in weights)
    assert sum(_zeros(m) for m in masks.values()) == round(sparsity * n)
    assert _pruned_set(masks) == _brute_force_global(weights, round(sparsity * n))


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.9])
def test_magnitude_layerwise_exact_count_per_tensor(sparsity):
    weights = _weights(1)
    masks = magnitude_masks(weights, sparsity, scope="layerwise")
    for name, w in weights.items():
        mask = masks[name]
        assert _zeros(mask) == round(sparsity * w.numel())
        assert _pruned_set({name: mask}) == _brute_force_global({name: w}, round(sparsity * w.numel()))


def test_magnitude_previous_zeros_stay_and_count():
    weights = _weights(2)
    n = sum(w.numel() for w in weights.values())
    # previous prunes some LARGE weights: magnitude alone would keep them
    previous = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    big = weights["b"].abs().reshape(-1).argsort(descending=True)[:4]
    previous["b"].view(-1)[big] = False
    masks = magnitude_masks(weights, 0.5, previous=previous)
    assert sum(_zeros(m) for m in masks.values()) == round(0.5 * n)
    assert not masks["b"].reshape(-1)[big].any()
    assert _pruned_set(masks) == _brute_force_global(weights, round(0.5 * n), previous)
    # layerwise with a previous covering one tensor only
    lw = magnitude_masks(weights, 0.6, scope="layerwise", previous={"b": previous["b"]})
    assert _zeros(lw["b"]) == round(0.6 * weights["b"].numel())
    assert not lw["b"].reshape(-1)[big].any()
    # gradual: masks at 0.3 are contained in masks at 0.6
    m1 = magnitude_masks(weights, 0.3)
    m2 = magnitude_masks(weights, 0.6, previous=m1)
    for name in weights:
        assert not (m2[name] & ~m1[name]).any()


def test_global_prunes_small_scale_tensor_more_than_layerwise():
    g = torch.Generator().manual_seed(3)
    weights = {"small": torch.randn(10, 10, generator=g) * 0.01, "large": torch.randn(10, 10, generator=g)}
    glob = magnitude_masks(weights, 0.5, scope="global")
    layer = magnitude_masks(weights, 0.5, scope="layerwise")
    assert _zeros(layer["small"]) == _zeros(layer["large"]) == 50
    assert _zeros(glob["small"]) >= 90
    assert _zeros(glob["small"]) + _zeros(glob["large"]) == 100
    # one global threshold: every pruned |w| <= every kept |w| across tensors
    pruned = torch.cat([w[~glob[k]].abs() for k, w in weights.items()])
    kept = torch.cat([w[glob[k]].abs() for k, w in weights.items()])
    assert pruned.max() <= kept.min()


@pytest.mark.parametrize("sparsity", [0.2, 0.45, 0.6])
def test_magnitude_many_ties_match_brute_force(sparsity):
    g = torch.Generator().manual_seed(9)
    weights = {name: torch.randint(-3, 4, shape, generator=g).float() for name, shape in
               [("a", (6, 5)), ("b", (13,))]}
    previous = magnitude_masks(weights, 0.1)
    n = 43
    for prev in (None, previous):
        masks = magnitude_masks(weights, sparsity, previous=prev)
        assert _pruned_set(masks) == _brute_force_global(weights, round(sparsity * n), prev)


def test_magnitude_ties_broken_by_position():
    weights = {"x": torch.ones(2, 3), "y": torch.ones(4)}
    masks = magnitude_masks(weights, 0.5)  # 5 of 10, earliest first
    assert masks["x"].reshape(-1).tolist() == [False] * 5 + [True]
    assert masks["y"].all()
    assert torch.equal(magnitude_masks(weights, 0.5)["x"], masks["x"])


def test_magnitude_bad_inputs():
    weights = _weights()
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            magnitude_masks(weights, bad)
    with pytest.raises(TypeError, match="sparsity"):
        magnitude_masks(weights, "0.5")
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(weights, 0.5, scope="per-layer")
    with pytest.raises(ValueError, match="shape"):
        magnitude_masks(weights, 0.5, previous={"a": torch.ones(5, 7, dtype=torch.bool)})
    with pytest.raises(TypeError, match="torch.bool"):
        magnitude_masks(weights, 0.5, previous={"a": torch.ones(7, 5)})
    with pytest.raises(ValueError, match="not among the weights"):
        magnitude_masks(weights, 0.5, previous={"zzz": torch.ones(7, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="already prune"):
        magnitude_masks(weights, 0.1, previous=magnitude_masks(weights, 0.5))
    with pytest.raises(ValueError, match="NaN"):
        magnitude_masks({"a": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="empty"):
        magnitude_masks({}, 0.5)


# ----------------------------------------------------------------------------- random


def test_random_masks_match_counts_and_differ_from_magnitude():
    weights = {"a": torch.randn(20, 20), "b": torch.randn(30, 10)}
    mag = magnitude_masks(weights, 0.7)
    rnd = random_masks_like(mag, generator=torch.Generator().manual_seed(0))
    for name in weights:
        assert rnd[name].shape == mag[name].shape and rnd[name].dtype == torch.bool
        assert _zeros(rnd[name]) == _zeros(mag[name])
        assert not torch.equal(rnd[name], mag[name])


def test_random_masks_reproducible_from_seed():
    masks = magnitude_masks({"a": torch.randn(16, 16), "b": torch.randn(8)}, 0.5)
    r1 = random_masks_like(masks, generator=torch.Generator().manual_seed(7))
    r2 = random_masks_like(masks, generator=torch.Generator().manual_seed(7))
    r3 = random_masks_like(masks, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(r1[k], r2[k]) for k in masks)
    assert any(not torch.equal(r1[k], r3[k]) for k in masks)


def test_random_masks_with_previous_and_uniformity():
    n, zeros = 10, 4
    target = {"w": torch.tensor([False] * zeros + [True] * (n - zeros))}
    previous = {"w": torch.ones(n, dtype=torch.bool)}
    previous["w"][7] = False
    g = torch.Generator().manual_seed(0)
    draws = 3000
    counts = torch.zeros(n)
    for _ in range(draws):
        mask = random_masks_like(target, generator=g, previous=previous)["w"]
        assert _zeros(mask) == zeros and not mask[7]
        counts += (~mask).float()
    # position 7 always pruned; the other 9 share the remaining 3 zeros evenly (p = 1/3)
    freq = counts / draws
    assert freq[7] == 1.0
    others = torch.cat([freq[:7], freq[8:]])
    assert torch.allclose(others, torch.full_like(others, 1 / 3), atol=0.04)


def test_random_masks_bad_inputs():
    masks = {"w": torch.tensor([True, False, False])}
    with pytest.raises(ValueError, match="prune"):
        random_masks_like(masks, previous={"w": torch.tensor([False, False, False])})
    with pytest.raises(TypeError, match="generator"):
        random_masks_like(masks, generator=0)
    with pytest.raises(TypeError, match="torch.bool"):
        random_masks_like({"w": torch.ones(3)})


# ----------------------------------------------------------------------------- moduli


def _ring_distance(n: int) -> torch.Tensor:
    idx = torch.arange(n)
    diff = (idx[:, None] - idx[None, :]).abs()
    return torch.minimum(diff, n - diff).double()


def test_moduli_masks_keep_ring_neighbours():
    n = 12
    d = _ring_distance(n)
    # f = d: keep 5 per neuron -> itself and the two nearest on each side
    masks = moduli_masks({"w": d}, sparsity=7 / 12)
    for j in range(n):
        kept = set(torch.nonzero(masks["w"][j]).reshape(-1).tolist())
        assert kept == {(j + o) % n for o in (-2, -1, 0, 1, 2)}
    # DoG-like f: self-connection penalised, low cost at distance 1 -> keep exactly j +- 1
    f = (d - 1) ** 2 + 0.1 * d
    masks = moduli_masks({"w": f}, sparsity=10 / 12)
    for j in range(n):
        kept = set(torch.nonzero(masks["w"][j]).reshape(-1).tolist())
        assert kept == {(j - 1) % n, (j + 1) % n}


def test_moduli_masks_counts_and_magnitude_extremes():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(9, 9, generator=g)
    coeff = torch.rand(9, 9, generator=g)
    per_row = moduli_masks({"w": coeff}, 0.4)["w"]
    assert ((~per_row).sum(dim=1) == round(0.4 * 9)).all()
    whole = moduli_masks({"w": coeff}, 0.4, per_neuron=False)["w"]
    assert _zeros(whole) == round(0.4 * 81)
    assert coeff[~whole].min() >= coeff[whole].max()
    # magnitude_weight = 1 over the whole matrix is magnitude pruning of that matrix
    pure_mag = moduli_masks({"w": coeff}, 0.4, weights={"w": w}, magnitude_weight=1.0, per_neuron=False)
    assert torch.equal(pure_mag["w"], magnitude_masks({"w": w}, 0.4)["w"])
    # magnitude_weight = 1 per neuron keeps the largest |w| of every row
    rows = moduli_masks({"w": coeff}, 0.4, weights={"w": w}, magnitude_weight=1.0)["w"]
    for j in range(9):
        top = set(w[j].abs().argsort(descending=True)[: 9 - round(0.4 * 9)].tolist())
        assert set(torch.nonzero(rows[j]).reshape(-1).tolist()) == top
    # a blend sits between the two: it differs from pure geometry on random data
    blend = moduli_masks({"w": coeff}, 0.4, weights={"w": w}, magnitude_weight=0.5)["w"]
    assert not torch.equal(blend, per_row) and not torch.equal(blend, rows)
    assert ((~blend).sum(dim=1) == round(0.4 * 9)).all()


def test_moduli_masks_ties_and_zero_sparsity():
    flat = torch.zeros(3, 4)
    masks = moduli_masks({"w": flat}, 0.5)["w"]
    assert masks.tolist() == [[True, True, False, False]] * 3
    whole = moduli_masks({"w": flat}, 0.5, per_neuron=False)["w"]
    assert whole.reshape(-1).tolist() == [True] * 6 + [False] * 6
    assert moduli_masks({"w": flat}, 0.0)["w"].all()
    assert moduli_masks({"w": flat}, 0.0, per_neuron=False)["w"].all()


def test_moduli_masks_previous_and_bad_inputs():
    d = _ring_distance(8)
    previous = {"w": torch.ones(8, 8, dtype=torch.bool)}
    previous["w"][:, 0] = False  # everyone already lost the connection from neuron 0
    previous["w"][0, 0] = True
    masks = moduli_masks({"w": d}, 0.5, previous=previous)["w"]
    assert not (masks & ~previous["w"]).any()
    assert ((~masks).sum(dim=1) == 4).all()
    with pytest.raises(ValueError, match="2-D"):
        moduli_masks({"w": torch.rand(4)}, 0.5)
    with pytest.raises(ValueError, match="pass weights"):
        moduli_masks({"w": d}, 0.5, magnitude_weight=0.5)
    with pytest.raises(ValueError, match="magnitude_weight"):
        moduli_masks({"w": d}, 0.5, weights={"w": d}, magnitude_weight=1.5)
    with pytest.raises(ValueError, match="shape"):
        moduli_masks({"w": d}, 0.5, weights={"w": torch.rand(8, 7)}, magnitude_weight=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        moduli_masks({"w": d}, 1.0)


# ----------------------------------------------------------------------------- schedules


def test_linear_ramp_values():
    ramp = LinearRamp(0.9, 10)
    assert ramp.sparsity_at(0) == 0.0
    assert ramp.sparsity_at(9) == pytest.approx(0.9)
    assert ramp.sparsity_at(3) == pytest.approx(0.3)
    assert ramp(20) == pytest.approx(0.9)
    assert LinearRamp(0.95, 1).sparsity_at(0) == 0.95
    assert not ramp.is_update(0) and ramp.is_update(1) and not ramp.is_update(10)
    assert [LinearRamp(0.9, 4).sparsity_at(e) for e in range(4)] == pytest.approx([0.0, 0.3, 0.6, 0.9])


def test_cubic_schedule_values():
    cubic = CubicSchedule(0.9, start_step=100, end_step=200)
    assert cubic.sparsity_at(0) == 0.0
    assert cubic.sparsity_at(100) == 0.0
    assert cubic.sparsity_at(150) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert cubic.sparsity_at(200) == pytest.approx(0.9)
    assert cubic.sparsity_at(10_000) == pytest.approx(0.9)
    stepped = CubicSchedule(0.8, 0, 100, initial=0.2, frequency=10)
    assert stepped.sparsity_at(0) == pytest.approx(0.2)
    assert stepped.sparsity_at(57) == stepped.sparsity_at(50) == pytest.approx(0.8 - 0.6 * 0.5**3)
    assert stepped.is_update(50) and not stepped.is_update(57)
    values = [cubic.sparsity_at(t) for t in range(90, 210)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_one_shot_and_schedule_errors():
    shot = OneShot(0.9, at=5)
    assert shot.sparsity_at(4) == 0.0 and shot.sparsity_at(5) == 0.9 and shot.is_update(5)
    with pytest.raises(ValueError, match="target"):
        LinearRamp(1.0, 10)
    with pytest.raises(ValueError, match="epochs"):
        LinearRamp(0.9, 0)
    with pytest.raises(ValueError, match="end_step"):
        CubicSchedule(0.9, 10, 10)
    with pytest.raises(ValueError, match="initial"):
        CubicSchedule(0.5, 0, 10, initial=0.6)
    with pytest.raises(ValueError, match="t must be >= 0"):
        LinearRamp(0.9, 10).sparsity_at(-1)
    with pytest.raises(TypeError, match="t must be an int"):
        OneShot(0.9).sparsity_at(1.5)


# ----------------------------------------------------------------------------- pruner


def _train_steps(model, optimizer, steps, seed=0, check=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=g)
        y = torch.randn(16, 3, generator=g)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        if check is not None:
            check()


def _adamw_after_warmup(model):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    _train_steps(model, opt, 10, seed=1)  # momentum built up BEFORE pruning
    return opt


def test_pruner_keeps_zeros_through_adamw_with_stale_moments():
    model = _small_mlp()
    opt = _adamw_after_warmup(model)
    weights = select_parameters(model, ["0.weight", "2.weight"])
    masks = magnitude_masks(weights, 0.7)
    before = {k: w.detach().clone() for k, w in weights.items()}
    pruner = Pruner(model, masks).attach(opt)

    def check():
        for name, w in weights.items():
            assert (w[~masks[name]] == 0).all()

    check()
    _train_steps(model, opt, 20, check=check)
    for name, w in weights.items():  # the kept weights did train
        assert not torch.equal(w[masks[name]], before[name][masks[name]])
    assert pruner.report().sparsity == pytest.approx(round(0.7 * 144) / 144)


def test_stale_moments_revive_weights_without_step_hook():
    # negative control: gradient hooks alone do not stop AdamW's stale moments
    model = _small_mlp()
    opt = _adamw_after_warmup(model)
    weights = select_parameters(model, ["0.weight"])
    masks = magnitude_masks(weights, 0.7)
    Pruner(model, masks)  # not attached
    _train_steps(model, opt, 3)
    assert (weights["0.weight"][~masks["0.weight"]] != 0).any()


def test_gradient_hooks_zero_masked_gradients():
    model = _small_mlp()
    reference = copy.deepcopy(model)
    masks = magnitude_masks(select_parameters(model, ["0.weight"]), 0.5)
    pruner = Pruner(model, masks)
    with torch.no_grad():
        reference[0].weight.mul_(masks["0.weight"])
    x = torch.randn(5, 6)
    model(x).square().sum().backward()
    reference(x).square().sum().backward()
    grad, ref = model[0].weight.grad, reference[0].weight.grad
    mask = masks["0.weight"]
    assert (ref[~mask] != 0).any()
    assert (grad[~mask] == 0).all()
    assert torch.allclose(grad[mask], ref[mask])
    assert torch.equal(model[2].weight.grad, reference[2].weight.grad)
    pruner.detach()
    model.zero_grad()
    model(x).square().sum().backward()
    assert (model[0].weight.grad[~mask] != 0).any()


def test_pruner_update_and_state_dict(tmp_path):
    model = _small_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    weights = select_parameters(model, ["0.weight", "2.weight"])
    pruner = Pruner(model, magnitude_masks(weights, 0.3)).attach(opt)
    _train_steps(model, opt, 3)
    m2 = magnitude_masks(weights, 0.6, previous=pruner.masks)
    pruner.update(m2)
    assert all((w[~m2[k]] == 0).all() for k, w in weights.items())
    _train_steps(model, opt, 3)
    assert all((w[~m2[k]] == 0).all() for k, w in weights.items())
    path = tmp_path / "masks.pt"
    torch.save(pruner.state_dict(), path)
    state = torch.load(path, weights_only=True)
    fresh = _small_mlp(seed=5)
    loaded = Pruner(fresh, {"0.weight": torch.ones(16, 6, dtype=torch.bool)})
    loaded.load_state_dict(state)
    assert set(loaded.masks) == set(m2)
    assert all(torch.equal(loaded.masks[k], m2[k]) for k in m2)
    assert (fresh[2].weight[~m2["2.weight"]] == 0).all()


def test_pruner_bad_inputs():
    model = _small_mlp()
    with pytest.raises(ValueError, match="unknown parameter name.*available"):
        Pruner(model, {"0.wieght": torch.ones(16, 6, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        Pruner(model, {"0.weight": torch.ones(6, 16, dtype=torch.bool)})
    with pytest.raises(TypeError, match="torch.bool"):
        Pruner(model, {"0.weight": torch.ones(16, 6)})
    pruner = Pruner(model, {"0.weight": torch.ones(16, 6, dtype=torch.bool)})
    other = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="none of the masked"):
        pruner.attach(torch.optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="'masks'"):
        pruner.load_state_dict({"0.weight": torch.ones(16, 6, dtype=torch.bool)})


def test_select_parameters():
    model = _small_mlp()
    assert list(select_parameters(model, None)) == ["0.weight", "2.weight"]
    assert list(select_parameters(model, ["2.bias", "0.weight"])) == ["2.bias", "0.weight"]
    with pytest.raises(ValueError, match=r"unknown parameter name\(s\) \['rnn.weight'\].*0.bias"):
        select_parameters(model, ["rnn.weight"])
    with pytest.raises(TypeError, match="sequence"):
        select_parameters(model, "0.weight")
    with pytest.raises(ValueError, match="more than once"):
        select_parameters(model, ["0.weight", "0.weight"])


# ----------------------------------------------------------------------------- lottery


class _RNNModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(3, 8, nonlinearity="relu")
        self.readout = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0][-1])


def test_lottery_reset_keeps_mask_changes_survivors():
    torch.manual_seed(0)
    model = _RNNModel()
    names = ["rnn.weight_hh_l0", "readout.weight"]
    masks = magnitude_masks(select_parameters(model, names), 0.5)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    rng_state = torch.get_rng_state()
    lottery_reset(model, masks, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG untouched
    params = dict(model.named_parameters())
    for name in names:
        assert (params[name][~masks[name]] == 0).all()
        assert (params[name][masks[name]] != before[name][masks[name]]).all()
    for name in ["rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "readout.bias"]:
        assert torch.equal(params[name], before[name])  # unlisted parameters untouched
    # the same generator seed reproduces the reset
    torch.manual_seed(0)
    twin = _RNNModel()
    lottery_reset(twin, masks, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(p, params[n]) for n, p in twin.named_parameters())
    # the model still trains under the fixed mask
    assert torch.isfinite(model(torch.randn(5, 2, 3))).all()


def test_lottery_reset_init_fn_and_errors():
    model = _RNNModel()
    masks = magnitude_masks(select_parameters(model, ["rnn.weight_hh_l0"]), 0.25)
    lottery_reset(model, masks, init_fn=nn.init.ones_)
    w = model.rnn.weight_hh_l0
    assert (w[masks["rnn.weight_hh_l0"]] == 1).all() and (w[~masks["rnn.weight_hh_l0"]] == 0).all()

    class Raw(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 3))

    with pytest.raises(ValueError, match="reset_parameters"):
        lottery_reset(Raw(), {"w": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="unknown parameter"):
        lottery_reset(model, {"rnn.weight": torch.ones(8, 8, dtype=torch.bool)})


# ----------------------------------------------------------------------------- report


def test_sparsity_report_against_direct_count():
    g = torch.Generator().manual_seed(5)
    weights = {"enc": torch.randn(4, 6, generator=g), "hh": torch.randn(5, 5, generator=g)}
    weights["enc"][0, :3] = 0.0
    masks = {"hh": torch.rand(5, 5, generator=g) > 0.4}
    report = sparsity_report(weights, masks)
    expected = {}
    for name, w in weights.items():
        count = 0
        for i, value in enumerate(w.reshape(-1).tolist()):
            pruned = name in masks and not bool(masks[name].reshape(-1)[i])
            count += int(value == 0.0 or pruned)
        expected[name] = count
    for name, w in weights.items():
        row = report[name]
        assert row.zeros == expected[name] and row.total == w.numel()
        assert row.sparsity == pytest.approx(expected[name] / w.numel())
        assert row.share == pytest.approx(w.numel() / 49)
    assert report["enc"].pruned is None and report["hh"].pruned == int((~masks["hh"]).sum())
    assert report.total == 49 and report.zeros == sum(expected.values())
    assert report.sparsity == pytest.approx(sum(expected.values()) / 49)
    assert "enc, hh" in report.denominator and "49" in report.denominator
    frame = report.to_frame()
    assert list(frame.index) == ["enc", "hh", "global"]
    assert frame.loc["global", "zeros"] == report.zeros
    assert report.to_dict()["matrices"][1]["shape"] == [5, 5]
    with pytest.raises(ValueError, match="shape"):
        sparsity_report(weights, {"hh": torch.ones(4, 6, dtype=torch.bool)})


# ----------------------------------------------------------------------------- torch prune


def test_torch_prune_round_trip():
    torch.manual_seed(0)
    model = _RNNModel()
    names = ["rnn.weight_hh_l0", "readout.weight"]
    masks = magnitude_masks(select_parameters(model, names), 0.6)
    reference = copy.deepcopy(model)
    Pruner(reference, masks).detach()
    to_torch_prune(model, masks)
    assert hasattr(model.rnn, "weight_hh_l0_orig") and hasattr(model.rnn, "weight_hh_l0_mask")
    assert "readout.weight_orig" in dict(model.named_parameters())
    back = from_torch_prune(model)
    assert set(back) == set(names)
    assert all(back[k].dtype == torch.bool and torch.equal(back[k], masks[k]) for k in names)
    x = torch.randn(4, 2, 3)
    assert torch.allclose(model(x), reference(x))
    assert sorted(remove_torch_prune(model)) == sorted(names)
    assert from_torch_prune(model) == {}
    params = dict(model.named_parameters())
    assert all((params[k][~masks[k]] == 0).all() for k in names)


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_large_masks_and_pruner():
    device = torch.device("cuda")
    g = torch.Generator(device=device).manual_seed(0)
    weights = {
        "encoder": torch.randn(4096, 512, device=device, generator=g),
        "hh": torch.randn(4096, 4096, device=device, generator=g),
        "decoder": torch.randn(512, 4096, device=device, generator=g),
    }
    n = sum(w.numel() for w in weights.values())
    masks = magnitude_masks(weights, 0.9)
    assert all(m.device.type == "cuda" for m in masks.values())
    assert sum(_zeros(m) for m in masks.values()) == round(0.9 * n)
    more = magnitude_masks(weights, 0.98, previous=masks)
    assert sum(_zeros(m) for m in more.values()) == round(0.98 * n)
    cpu_gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    rnd = random_masks_like(masks, generator=cpu_gen())
    assert all(_zeros(rnd[k]) == _zeros(masks[k]) for k in masks)
    cpu_rnd = random_masks_like({k: m.cpu() for k, m in masks.items()}, generator=cpu_gen())
    assert all(torch.equal(rnd[k].cpu(), cpu_rnd[k]) for k in masks)
    coeff = torch.rand(4096, 4096, device=device, generator=g)
    mm = moduli_masks({"hh": coeff}, 0.9, weights={"hh": weights["hh"]}, magnitude_weight=0.5)
    assert ((~mm["hh"]).sum(dim=1) == round(0.9 * 4096)).all()

    model = _small_mlp().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    x, y = torch.randn(16, 6, device=device), torch.randn(16, 3, device=device)
    pmasks = magnitude_masks(select_parameters(model, None), 0.7)
    Pruner(model, pmasks).attach(opt)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    assert (model[0].weight[~pmasks["0.weight"]] == 0).all()
    model_cpu = _RNNModel().to(device)
    lm = magnitude_masks(select_parameters(model_cpu, ["rnn.weight_hh_l0"]), 0.5)
    lottery_reset(model_cpu, lm, generator=torch.Generator().manual_seed(0))
    assert (model_cpu.rnn.weight_hh_l0[~lm["rnn.weight_hh_l0"]] == 0).all()
