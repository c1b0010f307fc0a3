"""Dense: torch.nn.Linear's convention with the RMS->RMS norm folded into normalize/dualize/norm."""

import math

import pytest
import torch

from modula_core import Dense, Vector


@pytest.mark.parametrize("bias", [False, True])
def test_normalize_and_dualize_hit_the_target_in_the_folded_norm(bias):
    torch.manual_seed(0)
    atom = Dense(24, 16, bias=bias, power_steps=50)
    g = Vector([torch.randn(24, 16, dtype=torch.float64)] + ([torch.randn(24, dtype=torch.float64)] if bias else []))
    update = g.clone()
    atom.normalize(update, 0.3)
    share = 0.5 if bias else 1.0
    # Independent: RMS->RMS operator norm sqrt(in/out) * sigma_max, and the bias's RMS norm.
    weight_norm = math.sqrt(16 / 24) * torch.linalg.svdvals(update[0])[0].item()
    assert weight_norm == pytest.approx(share * 0.3, rel=1e-6)
    if bias:
        assert (update[1].norm() / math.sqrt(24)).item() == pytest.approx(0.15, rel=1e-9)
    assert atom.norm(update) == pytest.approx(0.3, rel=1e-6)
    dual = atom.dualize(g, 0.3)
    assert 0.3 * 0.99 < atom.norm(dual) <= 0.3 * 1.001
    assert dual.dot(g) > 0


def test_zero_update_stays_zero_and_does_not_spoil_the_warm_start():
    atom = Dense(8, 4)
    zero = Vector([torch.zeros(8, 4)])
    atom.normalize(zero, 1.0)
    assert torch.count_nonzero(zero[0]) == 0 and "u" not in atom.buffers
    update = Vector([torch.randn(8, 4, generator=torch.Generator().manual_seed(1))])
    for _ in range(20):
        trial = update.clone()
        atom.normalize(trial, 1.0)
    assert atom.norm(trial) == pytest.approx(1.0, rel=1e-4)


def test_forward_is_torch_linear():
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out = Dense(3, 4, bias=True)(x, Vector([layer.weight, layer.bias]))
    torch.testing.assert_close(out, layer(x))


def test_mass_zero_dense_is_frozen_like_every_atom():
    frozen = Dense(4, 3, bias=True, mass=0.0)
    w = frozen.initialize(generator=torch.Generator().manual_seed(0))
    update = Vector([torch.ones(4, 3), torch.ones(4)])
    frozen.normalize(update)
    assert all(float(t.abs().sum()) == 0.0 for t in update)
    assert all(float(t.abs().sum()) == 0.0 for t in frozen.dualize(Vector([torch.ones(4, 3), torch.ones(4)])))
    assert len(w) == 2


def test_one_spectral_normaliser_keeps_a_zero_matrix_from_stalling_the_warm_start():
    from modula_core.linalg import spectral_norm_estimate

    buffers: dict = {}
    w = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    sigma = spectral_norm_estimate(w, buffers, steps=30)
    assert float(sigma) == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)), rel=1e-4)
    start = buffers["u"].clone()
    assert float(spectral_norm_estimate(torch.zeros(5, 4), buffers, steps=2)) == 0.0
    assert torch.equal(buffers["u"], start)  # the zero matrix left the warm start as it was
