"""Tests of moduli.inhibitors: known values, the DoG peak against a brute-force maximum,
shape/dtype preservation, gradients and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from moduli.inhibitors import (
    INHIBITORS,
    Constant,
    Diffusion,
    DoG,
    Gaussian,
    Identity,
    Inhibitor,
    Ripple,
    get_inhibitor,
    inhibitor_from_config,
)

torch.set_num_threads(1)


def dog_term(d: np.ndarray, amplitude: float, sw: float, sn: float) -> np.ndarray:
    return amplitude * (np.exp(-(d**2) / sw) - np.exp(-(d**2) / sn))


def brute_force_peak(amplitude: float, sw: float, sn: float) -> tuple[float, float]:
    """Maximiser and maximum of the DoG term on a fine grid, refined once."""
    hi = 10.0 * math.sqrt(sw)
    grid = np.linspace(0.0, hi, 200_001)
    i = int(np.argmax(dog_term(grid, amplitude, sw, sn)))
    step = grid[1] - grid[0]
    fine = np.linspace(max(grid[i] - step, 0.0), grid[i] + step, 20_001)
    j = int(np.argmax(dog_term(fine, amplitude, sw, sn)))
    return float(fine[j]), float(dog_term(fine[j : j + 1], amplitude, sw, sn)[0])


# ---------------------------------------------------------------------------------------------
# DoG
# ---------------------------------------------------------------------------------------------


def test_dog_default_peak():
    f = DoG()
    d_star, v_star = brute_force_peak(100.0, 5.0, 0.25)
    assert f.peak_distance == pytest.approx(d_star, abs=1e-6)
    assert f.peak_value == pytest.approx(v_star, rel=1e-10)
    assert f.peak_distance == pytest.approx(0.888, abs=1e-3)
    assert f.peak_value == pytest.approx(81.14, abs=0.01)
    assert f.offset == pytest.approx(f.peak_value)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dog_peak_offset_shape(dtype):
    f = DoG()
    d = torch.linspace(0, 60, 60_001, dtype=dtype)
    y = f(d)
    assert y.dtype == dtype and y.shape == d.shape
    assert torch.all(y >= 0)
    assert float(f(torch.tensor(f.peak_distance, dtype=dtype))) == pytest.approx(0.0, abs=1e-4)
    # f(0) = peak (the DoG term vanishes at 0) and f -> peak at long range
    assert float(y[0]) == pytest.approx(f.peak_value, rel=1e-6)
    assert float(f(torch.tensor(50.0, dtype=dtype))) == pytest.approx(f.peak_value, rel=1e-6)
    # the minimum over the grid sits at the analytic peak distance
    assert float(d[torch.argmin(y)]) == pytest.approx(f.peak_distance, abs=2e-3)
    # independent numpy evaluation
    ref = f.peak_value - dog_term(d.double().numpy(), 100.0, 5.0, 0.25)
    assert np.allclose(y.double().numpy(), np.maximum(ref, 0), atol=1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"amplitude": 1000.0},
        {"sigma_wide": 2.0, "sigma_narrow": 1.0},
        {"amplitude": 7.3, "sigma_wide": 11.0, "sigma_narrow": 0.1},
    ],
)
def test_dog_peak_never_negative_in_float32(kwargs):
    """Near the peak, float32 rounding of offset - DoG would dip below 0; f must not."""
    f = DoG(**kwargs)
    d = torch.linspace(0.99 * f.peak_distance, 1.01 * f.peak_distance, 200_001)
    assert float(f(d).min()) >= 0.0


def test_dog_numeric_offset_blog_form():
    f = DoG(offset=100.0)
    d = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    expected = 100.0 - 100.0 * (np.exp(-np.array([0.0, 1.0, 4.0]) / 5.0) - np.exp(-np.array([0.0, 1.0, 4.0]) / 0.25))
    assert np.allclose(f(d).numpy(), expected, atol=1e-12)
    assert float(f(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(19.958488, abs=1e-5)
    # a numeric offset is not clamped
    g = DoG(offset=0.0)
    assert float(g(torch.tensor(f.peak_distance))) == pytest.approx(-f.peak_value, rel=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    amplitude=st.floats(0.1, 1000.0),
    sn=st.floats(0.01, 10.0),
    ratio=st.floats(1.05, 200.0),
)
def test_dog_peak_property(amplitude, sn, ratio):
    sw = sn * ratio
    f = DoG(amplitude=amplitude, sigma_wide=sw, sigma_narrow=sn)
    d = torch.linspace(0, 6 * math.sqrt(sw), 20_001, dtype=torch.float64)
    y = f(d)
    assert torch.all(y >= 0)
    assert float(f(torch.tensor(f.peak_distance, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-9 * amplitude)
    # nothing on the grid is above the analytic peak of the DoG term
    assert float(dog_term(d.numpy(), amplitude, sw, sn).max()) <= f.peak_value * (1 + 1e-12)


def test_dog_gradient_is_analytic():
    f = DoG()
    d = torch.tensor([0.0, 0.3, f.peak_distance, 2.0, 7.0], dtype=torch.float64, requires_grad=True)
    f(d).sum().backward()
    x = d.detach()
    expected = -100.0 * (-2 * x / 5.0 * torch.exp(-(x**2) / 5.0) + 2 * x / 0.25 * torch.exp(-(x**2) / 0.25))
    assert torch.allclose(d.grad, expected, atol=1e-9)
    assert abs(float(d.grad[2])) < 1e-9


def test_dog_validation():
    with pytest.raises(ValueError, match="sigma_wide > sigma_narrow"):
        DoG(sigma_wide=0.2, sigma_narrow=0.25)
    with pytest.raises(ValueError, match="sigma_wide > sigma_narrow"):
        DoG(sigma_wide=1.0, sigma_narrow=1.0)
    with pytest.raises(ValueError, match="sigma_narrow must be > 0"):
        DoG(sigma_narrow=0.0)
    with pytest.raises(ValueError, match="amplitude must be > 0"):
        DoG(amplitude=-1.0)
    with pytest.raises(ValueError, match="'peak' or a real number"):
        DoG(offset="max")
    with pytest.raises(ValueError, match="finite"):
        DoG(offset=float("nan"))
    with pytest.raises(TypeError, match="real number"):
        DoG(amplitude="100")


# ---------------------------------------------------------------------------------------------
# the simple inhibitors
# ---------------------------------------------------------------------------------------------


def test_known_values():
    d = torch.tensor([0.0, math.pi / 4, math.pi / 2, math.sqrt(3.0), 3.0], dtype=torch.float64)
    assert torch.allclose(Diffusion()(d), d**2)
    assert float(Diffusion()(torch.tensor(3.0))) == 9.0
    r = Ripple()(d)
    assert float(r[0]) == pytest.approx(100.0)
    assert float(r[1]) == pytest.approx(50.0)
    assert float(r[2]) == pytest.approx(0.0, abs=1e-12)
    g = Gaussian()(d)
    assert float(g[0]) == pytest.approx(100.0)
    assert float(g[3]) == pytest.approx(100.0 / math.e)
    assert float(g[4]) == pytest.approx(100.0 * math.exp(-3.0))
    assert torch.equal(Identity()(d), d)
    assert torch.equal(Constant()(d), torch.ones_like(d))
    assert torch.equal(Constant(42.5)(d), torch.full_like(d, 42.5))
    assert float(Ripple(base=1.0, amplitude=2.0, frequency=3.0)(torch.tensor(0.5))) == pytest.approx(
        1.0 + 2.0 * math.cos(1.5)
    )
    assert float(Gaussian(amplitude=2.0, variance=0.5)(torch.tensor(1.0))) == pytest.approx(2.0 * math.exp(-2.0))


@pytest.mark.parametrize("name", INHIBITORS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_preserved_and_differentiable(name, dtype):
    f = get_inhibitor(name)
    d = (torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=dtype) * 10).requires_grad_(True)
    y = f(d)
    assert y.shape == d.shape and y.dtype == dtype and y.device == d.device
    if name != "constant":
        y.sum().backward()
        assert d.grad is not None and torch.isfinite(d.grad).all()
    # the result is a fresh tensor: writing to it does not change the input
    plain = d.detach()
    before = plain.clone()
    f(plain).add_(1.0)
    assert torch.equal(plain, before)


def test_call_validation():
    with pytest.raises(TypeError, match="torch.Tensor"):
        DoG()([0.5])
    with pytest.raises(TypeError, match="floating"):
        Diffusion()(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="variance must be > 0"):
        Gaussian(variance=0.0)
    with pytest.raises(ValueError, match="finite"):
        Constant(float("inf"))


# ---------------------------------------------------------------------------------------------
# registry and configs
# ---------------------------------------------------------------------------------------------


def test_registry():
    assert INHIBITORS == ("dog", "diffusion", "ripple", "gaussian", "identity", "constant")
    expected = [DoG, Diffusion, Ripple, Gaussian, Identity, Constant]
    for name, cls in zip(INHIBITORS, expected):
        f = get_inhibitor(name)
        assert type(f) is cls and isinstance(f, Inhibitor) and f.name == name
        assert inhibitor_from_config(f.to_config()) == f
    assert get_inhibitor("constant", value=3.0) == Constant(3.0)
    assert get_inhibitor("dog", offset=100.0).offset == 100.0
    assert DoG().to_config() == {
        "name": "dog",
        "amplitude": 100.0,
        "sigma_wide": 5.0,
        "sigma_narrow": 0.25,
        "offset": "peak",
    }
    assert inhibitor_from_config({"name": "ripple", "frequency": 1.0}) == Ripple(frequency=1.0)
    assert repr(Constant(2.0)) == "Constant(value=2.0)"
    assert DoG() != DoG(offset=100.0) and len({Diffusion(), Diffusion(), Identity()}) == 2


def test_registry_errors():
    with pytest.raises(ValueError, match="allowed names: dog, diffusion, ripple, gaussian, identity, constant"):
        get_inhibitor("mexican_hat")
    with pytest.raises(ValueError, match="does not take"):
        get_inhibitor("diffusion", amplitude=2.0)
    with pytest.raises(TypeError, match="str"):
        get_inhibitor(None)
    with pytest.raises(ValueError, match="'name'"):
        inhibitor_from_config({"value": 1.0})


# ---------------------------------------------------------------- the plain (non-inverted) DoG
def test_dog_plain_is_the_non_inverted_term_at_known_distances():
    dog = DoG()
    d = torch.tensor([0.0, dog.peak_distance, 1.0, 3.0, 8.0], dtype=torch.float64)
    expected = [100.0 * (math.exp(-x * x / 5.0) - math.exp(-x * x / 0.25)) for x in d.tolist()]
    assert dog.plain(d).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert float(dog.plain(d)[0]) == 0.0 and float(dog.plain(d)[1]) == pytest.approx(dog.peak_value, rel=1e-12)
    # the inverted DoG is the peak minus the plain term
    torch.testing.assert_close(dog(d), dog.peak_value - dog.plain(d), rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="floating torch.Tensor"):
        dog.plain(torch.tensor([1, 2]))


def test_plain_dog_torus_mean_matches_a_numerical_integral():
    # expected plain DoG of two uniform points on the 10-torus: a midpoint-rule integral over the
    # minimum-image square [-5, 5)^2, independent of the closed form (erf) in the code
    dog, m = DoG(), 2000
    x = (torch.arange(m, dtype=torch.float64) + 0.5) * (10.0 / m) - 5.0
    d = torch.sqrt(x[:, None] ** 2 + x[None, :] ** 2)
    pair = float(dog.plain(d).mean())
    assert pair == pytest.approx(14.873425, rel=1e-6)
    for n in (1, 128, 1024):
        assert dog.plain_torus_mean(n) == pytest.approx(pair * (n - 1) / n, rel=1e-6)
    assert dog.plain_torus_mean(1024) == pytest.approx(14.8589, abs=1e-4)
    with pytest.raises(ValueError, match="positive int"):
        dog.plain_torus_mean(0)
