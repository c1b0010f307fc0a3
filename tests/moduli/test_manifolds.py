"""Tests of moduli.manifolds: distances against independent float64 formulas, metric axioms,
projection, float32 resolution, gradients, geoopt optimisation and the registry."""

from __future__ import annotations

import itertools
import math

import geoopt
import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from moduli.manifolds import (
    MANIFOLDS,
    Circle,
    Euclidean,
    KleinBottle,
    Manifold,
    Product,
    Sphere,
    Torus,
    get_manifold,
    manifold_from_config,
    safe_norm,
    safe_sqrt,
)

torch.set_num_threads(1)

ALL = {
    "torus": Torus(2, 10.0),
    "torus6": Torus(6, 10.0),
    "torus3_p7": Torus(3, 7.0),
    "klein": KleinBottle(10.0),
    "klein_p3": KleinBottle(3.0),
    "circle": Circle(5.0),
    "sphere": Sphere(2, 5.0),
    "s3": Sphere(3, 10.0),
    "mixed": Product(Sphere(2, 5.0), Torus(2, 10.0)),
    "r3": Euclidean(3),
    "triple": Product(Circle(2.0), KleinBottle(4.0), Euclidean(1)),
}


# ---------------------------------------------------------------------------------------------
# independent float64 references (numpy, brute force)
# ---------------------------------------------------------------------------------------------


def ref_torus(x: np.ndarray, y: np.ndarray, p: float) -> float:
    dx = np.abs(x - y) % p
    return float(np.sqrt(np.sum(np.minimum(dx, p - dx) ** 2)))


def ref_klein(x: np.ndarray, y: np.ndarray, p: float, reach: int = 6) -> float:
    """Min over the images (y0 + a p, (-1)^a y1 + b p), |a|, |b| <= reach."""
    best = math.inf
    for a in range(-reach, reach + 1):
        for b in range(-reach, reach + 1):
            img = np.array([y[0] + a * p, (-1) ** a * y[1] + b * p])
            best = min(best, float(np.linalg.norm(x - img)))
    return best


def ref_angle(x: np.ndarray, y: np.ndarray) -> float:
    """Angle from the wedge norm and the dot product (valid for non-unit vectors too)."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    dot = float(x @ y)
    # |x ^ y|^2 as the sum of squared 2x2 minors: |x|^2 |y|^2 - dot^2 cancels catastrophically
    # for nearly parallel vectors (an angle of 1e-8 came out 20% too large)
    minors = np.outer(x, y) - np.outer(y, x)
    wedge2 = float(np.sum(np.triu(minors, 1) ** 2))
    return math.atan2(math.sqrt(wedge2), dot)


def reference(m: Manifold, x: np.ndarray, y: np.ndarray) -> float:
    if isinstance(m, Torus):
        return ref_torus(x, y, m.period)
    if isinstance(m, KleinBottle):
        return ref_klein(x, y, m.period)
    if isinstance(m, Sphere):  # includes Circle
        return m.radius * ref_angle(x, y)
    if isinstance(m, Euclidean):
        return float(np.linalg.norm(x - y))
    if isinstance(m, Product):
        parts = [reference(f, x[s], y[s]) for f, s in zip(m.factors, m.slices)]
        return float(np.sqrt(np.sum(np.square(parts))))
    raise AssertionError(f"no reference for {m!r}")


def scale(m: Manifold) -> float:
    """A typical distance of the space, for tolerances."""
    if isinstance(m, (Torus, KleinBottle)):
        return m.period
    if isinstance(m, Sphere):
        return m.radius
    if isinstance(m, Product):
        return max(scale(f) for f in m.factors)
    return 1.0


def from_unit_cube(m: Manifold, u: np.ndarray) -> np.ndarray | None:
    """Map coordinates in [-1, 1] to points of m (periodic ones far outside the domain too)."""
    if isinstance(m, (Torus, KleinBottle)):
        return 3.0 * m.period * u
    if isinstance(m, Sphere):
        n = np.linalg.norm(u, axis=-1, keepdims=True)
        if np.any(n < 0.2):
            return None
        return u / n
    if isinstance(m, Euclidean):
        return 5.0 * u
    if isinstance(m, Product):
        parts = [from_unit_cube(f, u[..., s]) for f, s in zip(m.factors, m.slices)]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts, axis=-1)
    raise AssertionError


def points_strategy(n: int):
    names = sorted(ALL)
    return st.sampled_from(names).flatmap(
        lambda name: st.tuples(
            st.just(name),
            st.lists(
                st.floats(-1.0, 1.0, allow_nan=False, width=64),
                min_size=n * ALL[name].coord_dim,
                max_size=n * ALL[name].coord_dim,
            ),
        )
    )


def make_points(name: str, raw: list[float], n: int) -> tuple[Manifold, np.ndarray]:
    m = ALL[name]
    pts = from_unit_cube(m, np.asarray(raw, dtype=np.float64).reshape(n, m.coord_dim))
    assume(pts is not None)
    return m, pts


# ---------------------------------------------------------------------------------------------
# distances against the references; metric axioms (hypothesis)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(points_strategy(2))
def test_distance_matches_bruteforce_reference(case):
    m, pts = make_points(*case, n=2)
    x, y = torch.from_numpy(pts[0]), torch.from_numpy(pts[1])
    d = m.distance(x, y)
    assert d.dtype == torch.float64 and d.shape == ()
    ref = reference(m, pts[0], pts[1])
    # sphere reference is exact; tolerances cover float64 rounding of periodic wraps
    assert abs(float(d) - ref) <= 1e-9 * scale(m) + 1e-9 * ref


@settings(max_examples=150, deadline=None)
@given(points_strategy(3))
def test_metric_axioms(case):
    m, pts = make_points(*case, n=3)
    p = torch.from_numpy(pts).to(torch.float32)
    x, y, z = p[0], p[1], p[2]
    tol = 1e-5 * scale(m)
    dxy, dyx = m.distance(x, y), m.distance(y, x)
    assert float(dxy) >= 0.0
    assert abs(float(dxy) - float(dyx)) <= tol
    assert float(m.distance(x, x)) == 0.0
    assert float(m.distance(x, z)) <= float(dxy) + float(m.distance(y, z)) + 4 * tol
    # distance is invariant under re-representing the points
    assert abs(float(m.distance(m.project(x), m.project(y))) - float(dxy)) <= 4 * tol


@pytest.mark.parametrize("name", sorted(ALL))
def test_pairwise_equals_broadcast_distance_and_loop(name):
    m = ALL[name]
    g = torch.Generator().manual_seed(1)
    pts = m.random(7, generator=g, dtype=torch.float64)
    D = m.pairwise_distance(pts)
    assert D.shape == (7, 7) and D.dtype == torch.float64
    for i, j in itertools.product(range(7), range(7)):
        assert torch.allclose(D[i, j], m.distance(pts[i], pts[j]), rtol=0, atol=1e-12)
        assert abs(float(D[i, j]) - reference(m, pts[i].numpy(), pts[j].numpy())) < 1e-9 * scale(m)
    assert torch.equal(D, D.T) or torch.allclose(D, D.T, rtol=0, atol=1e-12)
    assert torch.all(D.diagonal() == 0)
    # broadcasting over several leading dims
    a, b = pts[:3].reshape(3, 1, m.coord_dim), pts[3:].reshape(1, 4, m.coord_dim)
    assert torch.allclose(m.distance(a, b), D[:3, 3:], rtol=0, atol=1e-12)


def test_klein_known_values():
    k = KleinBottle(10.0)

    def d(a, b):
        return float(k.distance(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))

    # across the x seam the y coordinate is mirrored: (9.5, 2) is next to (0.5, 8)
    assert d([9.5, 2.0], [0.5, 8.0]) == pytest.approx(1.0, abs=1e-12)
    # ... while the torus-like image (0.5, 2) is further away than on a torus
    assert d([9.5, 2.0], [0.5, 2.0]) == pytest.approx(math.hypot(1.0, 4.0), abs=1e-12)  # via (10.5, -2)
    assert d([3.0, 9.8], [3.0, 0.1]) == pytest.approx(0.3, abs=1e-12)
    assert d([5.0, 5.0], [5.0, 5.0]) == 0.0
    # odd image (x + p, p - y) itself is the same point
    assert d([1.0, 3.0], [11.0, 7.0]) == pytest.approx(0.0, abs=1e-12)
    assert d([1.0, 3.0], [11.0, 3.0]) == pytest.approx(4.0, abs=1e-12)


def test_sphere_and_circle_known_values():
    s = Sphere(2, 5.0)
    e = torch.eye(3, dtype=torch.float64)
    assert float(s.distance(e[0], e[1])) == pytest.approx(5.0 * math.pi / 2, abs=1e-12)
    assert float(s.distance(e[0], -e[0])) == pytest.approx(5.0 * math.pi, abs=1e-12)
    c = Circle(5.0)
    t = torch.tensor([0.3, 2.9, -2.9], dtype=torch.float64)
    pts = torch.stack((torch.cos(t), torch.sin(t)), dim=-1)
    # 2.9 and -2.9 are 2*pi - 5.8 apart the short way
    assert float(c.distance(pts[1], pts[2])) == pytest.approx(5.0 * (2 * math.pi - 5.8), abs=1e-12)
    assert float(c.distance(pts[0], pts[1])) == pytest.approx(5.0 * 2.6, abs=1e-12)


def test_torus_known_values():
    t = Torus(2, 10.0)
    x = torch.tensor([[0.5, 9.0]], dtype=torch.float64)
    y = torch.tensor([[9.5, 1.0]], dtype=torch.float64)
    assert float(t.distance(x, y)) == pytest.approx(math.hypot(1.0, 2.0), abs=1e-12)
    # |dx| = p/2 exactly: both directions give 5
    assert float(t.distance(torch.tensor([0.0, 0.0]), torch.tensor([5.0, 0.0]))) == 5.0


# ---------------------------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------------------------


def test_torus_project_into_domain_and_same_point():
    t = Torus(3, 10.0)
    x = (torch.rand(200, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 0.5) * 100
    px = t.project(x)
    assert torch.all(px >= 0) and torch.all(px < 10.0)
    assert torch.allclose(t.distance(px, x), torch.zeros(200, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(t.project(px), px, atol=1e-12)
    # rounding edge cases stay strictly inside [0, p) in float32
    edge = torch.tensor([[-1e-9, -1e-30, 10.0], [20.0, -10.0, math.nextafter(10.0, 0.0)]], dtype=torch.float32)
    pe = t.project(edge)
    assert torch.all(pe >= 0) and torch.all(pe < 10.0)
    # floor(x / p) can be off by one in float32 (denormals; periods that are not exact)
    tiny = float(t.project(torch.tensor([[-1.4e-45, 0.0, 0.0]]))[0, 0])
    assert 0.0 <= tiny < 10.0
    g = torch.Generator().manual_seed(12)
    for period in (2.3, 0.1, 7.7):
        tp = Torus(1, period)
        x32 = (torch.rand(20_000, 1, generator=g) - 0.5) * 2000 * period
        # values one ulp below / above multiples of the period are the hard cases
        near = torch.round(x32 / period) * period
        x32 = torch.cat((x32, torch.nextafter(near, near - 1), torch.nextafter(near, near + 1)))
        p32 = tp.project(x32)
        assert torch.all(p32 >= 0) and torch.all(p32 < period), period
        kb = KleinBottle(period)
        xy = torch.cat((x32, torch.rand(x32.shape, generator=g) * period), dim=-1)
        kp = kb.project(xy)
        assert torch.all(kp >= 0) and torch.all(kp < period), period
        # the mirror of y must match the number of x wraps actually applied
        assert float(kb.distance(kp, xy).max()) < 1e-3 * period, period


def test_klein_project_matches_identifications():
    k = KleinBottle(10.0)
    g = torch.Generator().manual_seed(3)
    z = k.random(50, generator=g, dtype=torch.float64)
    for a, b in itertools.product(range(-3, 4), range(-3, 4)):
        img = torch.stack((z[:, 0] + a * 10.0, (-1) ** a * z[:, 1] + b * 10.0), dim=-1)
        back = k.project(img)
        assert torch.all(back >= 0) and torch.all(back < 10.0)
        # same point: the projection is the original domain representative (up to y = 0 ~ 10)
        assert torch.allclose(k.distance(back, img), torch.zeros(50, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(k.distance(back, z), torch.zeros(50, dtype=torch.float64), atol=1e-9)
        assert torch.allclose(back, z, atol=1e-9)
    # explicit flip: x wrapped once -> y mirrored
    p = k.project(torch.tensor([10.5, 2.0], dtype=torch.float64))
    assert torch.allclose(p, torch.tensor([0.5, 8.0], dtype=torch.float64))
    # a tiny negative x rounds onto the seam in float32; the flip must follow the rounding
    q = k.project(torch.tensor([-1e-9, 3.0], dtype=torch.float32))
    assert torch.allclose(q, torch.tensor([0.0, 3.0])), q
    q = k.project(torch.tensor([math.nextafter(10.0, 20.0), 3.0], dtype=torch.float32))
    assert torch.all(q < 10.0) and torch.allclose(q, torch.tensor([0.0, 7.0]), atol=1e-5), q


def test_sphere_euclid_product_project():
    s = Sphere(2, 5.0)
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(4)) * 7
    assert torch.allclose(s.project(x).norm(dim=-1), torch.ones(20), atol=1e-6)
    e = Euclidean(3)
    assert torch.equal(e.project(x), x)
    m = Product(Sphere(2, 5.0), Torus(2, 10.0))
    y = torch.cat((x, x[:, :2] * 10), dim=-1)
    py = m.project(y)
    sph, tor = m.split(py)
    assert torch.allclose(sph.norm(dim=-1), torch.ones(20), atol=1e-6)
    assert torch.all(tor >= 0) and torch.all(tor < 10)


# ---------------------------------------------------------------------------------------------
# float32 resolution
# ---------------------------------------------------------------------------------------------


def _sphere_pair(dim: int, angle: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=dim + 1)
    x /= np.linalg.norm(x)
    v = rng.normal(size=dim + 1)
    v -= (v @ x) * x
    v /= np.linalg.norm(v)
    return x, math.cos(angle) * x + math.sin(angle) * v


@pytest.mark.parametrize("m", [Sphere(2, 5.0), Sphere(3, 10.0), Circle(5.0)], ids=repr)
@pytest.mark.parametrize("angle", [1e-5, 1e-4, 1e-3, 0.5, math.pi / 2])
def test_sphere_float32_resolution_small_angles(m, angle):
    for seed in range(5):
        x64, y64 = _sphere_pair(m.dim, angle, seed)
        x, y = torch.tensor(x64, dtype=torch.float32), torch.tensor(y64, dtype=torch.float32)
        d = float(m.distance(x, y))
        # reference from the float32 values themselves, in float64
        ref = m.radius * ref_angle(x.double().numpy(), y.double().numpy())
        assert abs(d - ref) <= 1e-4 * ref, (d, ref)
        # and the float32 points are the intended ones to input-rounding accuracy
        assert abs(d - m.radius * angle) <= 2e-3 * m.radius * angle + 1e-6 * m.radius
    if angle == 1e-3:
        # a float32 clamped arccos cannot resolve this (the test can fail for that formula)
        naive = m.radius * torch.arccos(torch.clamp((x * y).sum(), -1, 1))
        assert abs(float(naive) - ref) > 10 * 1e-4 * ref


@pytest.mark.parametrize("m", [Sphere(2, 5.0), Circle(5.0)], ids=repr)
def test_sphere_float32_resolution_near_antipodal(m):
    gap = 1e-3
    for seed in range(5):
        x64, y64 = _sphere_pair(m.dim, math.pi - gap, seed)
        x, y = torch.tensor(x64, dtype=torch.float32), torch.tensor(y64, dtype=torch.float32)
        d = float(m.distance(x, y))
        ref = m.radius * ref_angle(x.double().numpy(), y.double().numpy())
        # the gap to the antipode (1e-3 of the radius here) is resolved to 1e-3 of itself;
        # float32 spacing at 5*pi is 9.5e-7 = 2e-4 of the gap
        assert abs((math.pi * m.radius - d) - (math.pi * m.radius - ref)) <= 1e-3 * gap * m.radius
        # exact antipode
        assert d <= math.pi * m.radius * (1 + 1e-7)
    e = torch.tensor([1.0, 0.0] + [0.0] * (m.coord_dim - 2))
    assert float(m.distance(e, -e)) == pytest.approx(math.pi * m.radius, rel=1e-7)


@pytest.mark.parametrize(
    "m,x,y,expected",
    [
        (Torus(2, 10.0), [9.995, 3.0], [0.005, 3.0], 0.01),
        (Torus(2, 10.0), [4.0, 3.0], [4.01, 3.0], 0.01),
        (Torus(2, 10.0), [0.003, 9.996], [9.997, 0.004], math.hypot(0.006, 0.008)),
        (KleinBottle(10.0), [9.995, 3.0], [0.005, 7.0], 0.01),
        (KleinBottle(10.0), [3.0, 9.995], [3.0, 0.005], 0.01),
        (KleinBottle(10.0), [9.996, 0.003], [0.004, 0.003], math.hypot(0.008, 0.006)),
        (KleinBottle(10.0), [6.0, 5.0], [6.006, 5.008], 0.01),
    ],
)
def test_periodic_float32_resolution(m, x, y, expected):
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    d = float(m.distance(xt, yt))
    ref = reference(m, xt.double().numpy(), yt.double().numpy())
    assert abs(d - ref) <= 1e-4 * ref, (d, ref)
    assert abs(d - expected) <= 1e-3 * expected


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


def _special_points(m: Manifold) -> torch.Tensor:
    """Random points plus duplicates and boundary/antipodal configurations."""
    g = torch.Generator().manual_seed(5)
    pts = m.random(6, generator=g)
    extra = [pts[0]]  # exact duplicate: zero off-diagonal distance
    if isinstance(m, (Torus, KleinBottle)):
        p = m.period
        base = torch.zeros(m.coord_dim)
        half = base.clone()
        half[0] = p / 2  # |dx| = p/2: both wraps tie
        extra += [base, half]
        if isinstance(m, KleinBottle):
            extra += [torch.tensor([p / 2, p / 2]), torch.tensor([0.0, p / 2])]
    elif isinstance(m, Sphere):
        extra += [-pts[1]]  # antipode of a random point
    elif isinstance(m, Product):
        extra += [m.project(torch.cat([torch.full((f.coord_dim,), 0.5) for f in m.factors]))]
    return torch.cat([pts, torch.stack(extra)], dim=0)


@pytest.mark.parametrize("name", sorted(ALL))
def test_pairwise_gradient_finite_everywhere(name):
    m = ALL[name]
    pts = _special_points(m).requires_grad_(True)
    D = m.pairwise_distance(pts)
    assert torch.isfinite(D).all()
    D.sum().backward()
    assert torch.isfinite(pts.grad).all(), pts.grad
    # a single point: only the diagonal term, whose gradient must be exactly 0 (not NaN)
    one = pts[:1].detach().clone().requires_grad_(True)
    m.pairwise_distance(one).sum().backward()
    assert torch.equal(one.grad, torch.zeros_like(one))


@pytest.mark.parametrize("name", sorted(ALL))
def test_distance_gradient_matches_finite_differences(name):
    m = ALL[name]
    g = torch.Generator().manual_seed(6)
    x = m.random(4, generator=g, dtype=torch.float64).requires_grad_(True)
    y = m.random(4, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(m.distance, (x, y), eps=1e-6, atol=1e-6)


def test_safe_sqrt_and_norm():
    s = torch.tensor([0.0, 4.0, 1e-30], dtype=torch.float64, requires_grad=True)
    r = safe_sqrt(s)
    assert torch.allclose(r, torch.tensor([0.0, 2.0, 1e-15], dtype=torch.float64))
    r.sum().backward()
    assert s.grad[0] == 0 and s.grad[1] == pytest.approx(0.25)
    v = torch.zeros(2, 3, requires_grad=True)
    safe_norm(v).sum().backward()
    assert torch.equal(v.grad, torch.zeros(2, 3))


# ---------------------------------------------------------------------------------------------
# random points, dtype/device, validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
def test_random_shape_dtype_reproducible(name):
    m = ALL[name]
    a = m.random(300, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    b = m.random(300, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert a.shape == (300, m.coord_dim) and a.dtype == torch.float64
    assert torch.equal(a, b)
    m.check_points(a)
    assert m.random(0).shape == (0, m.coord_dim)
    assert m.random(3).dtype == torch.float32


def test_random_distributions():
    g = torch.Generator().manual_seed(8)
    t = Torus(2, 10.0).random(4000, generator=g)
    assert torch.all((t >= 0) & (t < 10)) and abs(float(t.mean()) - 5.0) < 0.2
    s = Sphere(2, 5.0).random(4000, generator=g)
    assert torch.allclose(s.norm(dim=-1), torch.ones(4000), atol=1e-6)
    # uniform on S^2: each coordinate is uniform on [-1, 1] (Archimedes), mean 0, var 1/3
    assert float(s.mean(0).abs().max()) < 0.05
    assert torch.allclose(s.var(0), torch.full((3,), 1 / 3), atol=0.03)
    c = Circle(5.0).random(4000, generator=g)
    ang = torch.atan2(c[:, 1], c[:, 0])
    assert abs(float((ang > 0).float().mean()) - 0.5) < 0.05
    e = Euclidean(3).random(4000, generator=g)
    assert abs(float(e.std()) - 1.0) < 0.05


@pytest.mark.parametrize("name", sorted(ALL))
def test_dtype_follows_input(name):
    m = ALL[name]
    for dtype in (torch.float32, torch.float64):
        p = m.random(4, dtype=dtype)
        assert m.pairwise_distance(p).dtype == dtype
        assert m.project(p).dtype == dtype


def test_validation_errors():
    t = Torus(2, 10.0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        t.distance(torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="floating"):
        t.distance(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        t.distance([0.0, 0.0], torch.zeros(2))
    with pytest.raises(ValueError, match="broadcast"):
        t.distance(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="dtype"):
        t.distance(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        t.pairwise_distance(torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match="finite"):
        t.check_points(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="unit vectors"):
        Sphere(2).check_points(torch.tensor([[1.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="factor 0"):
        Product(Sphere(2), Torus(2)).check_points(torch.tensor([[2.0, 0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="non-negative int"):
        t.random(-1)
    with pytest.raises(TypeError, match="dtype"):
        t.random(2, dtype=torch.int64)
    with pytest.raises(TypeError, match="Generator"):
        t.random(2, generator=0)
    with pytest.raises(ValueError, match="> 0"):
        Torus(2, period=-1.0)
    with pytest.raises(ValueError, match=">= 1"):
        Torus(0)
    with pytest.raises(TypeError, match="positive int"):
        Sphere(1.5)
    with pytest.raises(TypeError, match="Manifold instance"):
        Product(Torus(2), "sphere")
    with pytest.raises(ValueError, match="at least one"):
        Product()


def test_repr_eq_config():
    assert repr(Torus(2, 10.0)) == "Torus(dim=2, period=10.0)"
    assert repr(Product(Sphere(2, 5.0), Torus(2))) == "Product(Sphere(dim=2, radius=5.0), Torus(dim=2, period=10.0))"
    assert Torus(2, 10) == Torus(2, 10.0) and Torus(2) != Torus(3) and Circle(5.0) != Sphere(1, 5.0)
    assert len({Torus(2), Torus(2), Sphere(2)}) == 2
    assert Torus(2).to_config() == {"name": "torus", "dim": 2, "period": 10.0}
    for m in ALL.values():
        assert manifold_from_config(m.to_config()) == m


# ---------------------------------------------------------------------------------------------
# geoopt: ManifoldParameter + Riemannian optimisers keep points valid
# ---------------------------------------------------------------------------------------------


def _assert_valid(m: Manifold, x: torch.Tensor) -> None:
    if isinstance(m, (Torus, KleinBottle)):
        assert torch.all(x >= 0) and torch.all(x < m.period), x
    elif isinstance(m, Sphere):
        assert torch.allclose(x.norm(dim=-1), torch.ones(x.shape[0], dtype=x.dtype), atol=1e-5)
    elif isinstance(m, Product):
        for f, part in zip(m.factors, m.split(x)):
            _assert_valid(f, part)
    m.check_points(x)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("optim", ["adam", "sgd"])
def test_riemannian_optimisers_keep_points_valid(name, optim):
    m = ALL[name]
    g = torch.Generator().manual_seed(9)
    param = m.parameter(m.random(12, generator=g))
    assert isinstance(param, geoopt.ManifoldParameter) and param.manifold is m.geoopt_manifold
    drift = torch.randn(12, m.coord_dim, generator=g)
    if optim == "adam":
        opt = geoopt.optim.RiemannianAdam([param], lr=0.7)
    else:
        opt = geoopt.optim.RiemannianSGD([param], lr=0.7, momentum=0.9)
    for step in range(15):
        opt.zero_grad()
        # a drift term forces many wraps on periodic spaces; the pairwise term couples points
        loss = -(param * drift).sum() + 0.01 * m.pairwise_distance(param).mean()
        loss.backward()
        opt.step()
        _assert_valid(m, param.detach())
    assert torch.isfinite(param).all()


def test_parameter_projects_and_validates():
    t = Torus(2, 10.0)
    p = t.parameter(torch.tensor([[12.0, -1.0]]))
    assert torch.allclose(p.detach(), torch.tensor([[2.0, 9.0]]))
    with pytest.raises(ValueError, match="unit vectors"):
        Sphere(2).parameter(torch.tensor([[3.0, 0.0, 0.0]]))
    s = Sphere(2).parameter(Sphere(2).random(3))
    assert isinstance(s.manifold, geoopt.Sphere)
    assert isinstance(Product(Sphere(2), Torus(2)).geoopt_manifold, geoopt.ProductManifold)


def test_klein_transport_follows_straight_line_in_cover():
    """Constant-velocity steps across the seam stay on one straight line of the cover."""
    k = KleinBottle(10.0)
    gm = k.geoopt_manifold
    x = torch.tensor([[9.5, 2.0]], dtype=torch.float64)
    v = torch.tensor([[0.73, 0.45]], dtype=torch.float64)
    start = x.clone()
    for step in range(1, 40):
        x, v = gm.retr_transp(x, v, v)
        straight = start + step * torch.tensor([[0.73, 0.45]], dtype=torch.float64)
        # compare as points (representatives may differ by rounding on the seam x = 0 ~ 10)
        assert float(k.distance(x, straight)) < 1e-9, (step, x, k.project(straight))
        assert torch.all((x >= 0) & (x < 10.0))
        # the velocity is mirrored once per seam crossing
        crossings = int(math.floor(float(straight[0, 0]) / 10.0))
        assert float(v[0, 1]) == pytest.approx(0.45 * (-1) ** crossings)
    # transp between nearby points on both sides of the seam mirrors y
    a = torch.tensor([9.9, 2.0], dtype=torch.float64)
    b = torch.tensor([0.1, 8.0], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(gm.transp(a, b, w), torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert torch.allclose(gm.logmap(a, b), torch.tensor([0.2, 0.0], dtype=torch.float64))
    assert float(gm.dist(a, b)) == pytest.approx(0.2)


def test_torus_geoopt_geometry():
    t = Torus(2, 10.0)
    gm = t.geoopt_manifold
    x = torch.tensor([9.0, 1.0], dtype=torch.float64)
    u = torch.tensor([2.5, -3.0], dtype=torch.float64)
    assert torch.allclose(gm.retr(x, u), torch.tensor([1.5, 8.0], dtype=torch.float64))
    assert torch.allclose(gm.logmap(x, gm.retr(x, u)), u)
    assert float(gm.inner(x, u, u)) == pytest.approx(15.25)
    assert torch.equal(gm.transp(x, gm.retr(x, u), u), u)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def test_registry_defaults():
    expected = {
        "torus": Torus(2, 10.0),
        "torus6": Torus(6, 10.0),
        "klein": KleinBottle(10.0),
        "circle": Circle(5.0),
        "sphere": Sphere(2, 5.0),
        "s3": Sphere(3, 10.0),
        "mixed": Product(Sphere(2, 5.0), Torus(2, 10.0)),
        "r3": Euclidean(3),
        "r9": Euclidean(9),
    }
    assert set(MANIFOLDS) == set(expected) | {"euclidean"}
    for name, m in expected.items():
        assert get_manifold(name) == m
    assert get_manifold("euclidean", dim=4) == Euclidean(4)
    assert get_manifold("torus", period=5.0) == Torus(2, 5.0)
    assert get_manifold("s3", radius=2.0) == Sphere(3, 2.0)
    assert get_manifold("mixed", period=4.0) == Product(Sphere(2, 5.0), Torus(2, 4.0))


def test_registry_errors():
    with pytest.raises(ValueError, match="allowed names: torus, torus6, klein"):
        get_manifold("donut")
    with pytest.raises(ValueError, match="does not take"):
        get_manifold("torus", radius=3.0)
    with pytest.raises(ValueError, match="requires \\['dim'\\]"):
        get_manifold("euclidean")
    with pytest.raises(TypeError, match="str"):
        get_manifold(3)
    with pytest.raises(ValueError, match="'name'"):
        manifold_from_config({"dim": 2})
    with pytest.raises(ValueError, match="factors"):
        manifold_from_config({"name": "product"})


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(ALL))
def test_cuda(name):
    m = ALL[name]
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    pts = m.random(16, generator=g, device=dev)
    assert pts.device.type == "cuda"
    # without an explicit device the generator's device is used
    assert m.random(2, generator=g).device.type == "cuda"
    cpu = m.pairwise_distance(pts.cpu())
    param = m.parameter(pts)
    D = m.pairwise_distance(param)
    assert D.device.type == "cuda"
    assert torch.allclose(D.detach().cpu(), cpu, atol=1e-4 * scale(m))
    opt = geoopt.optim.RiemannianAdam([param], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        (-(param * torch.ones_like(param)).sum() + 0.01 * m.pairwise_distance(param).mean()).backward()
        opt.step()
    assert param.grad is not None and torch.isfinite(param.grad).all()
    _assert_valid(m, param.detach())
    assert torch.all(m.project(param.detach()).isfinite())
