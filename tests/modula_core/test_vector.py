"""Vector arithmetic against plain lists of tensors, autograd helpers, saving and loading."""

from __future__ import annotations

import pytest
import torch

from modula_core import Vector

torch.set_num_threads(1)


def _tensors(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 4, generator=g), torch.randn(5, generator=g), torch.randn(2, 2, 2, generator=g) + 3.0]


def _same(v: Vector, ts: list[torch.Tensor]) -> None:
    assert isinstance(v, Vector)
    assert len(v) == len(ts)
    for a, b in zip(v, ts):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
    ],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_ops_with_vectors_and_scalars(op) -> None:
    xs, ys = _tensors(0), _tensors(1)
    x, y = Vector(xs), Vector(ys)
    _same(op(x, y), [op(a, b) for a, b in zip(xs, ys)])
    _same(op(x, 2.5), [op(a, 2.5) for a in xs])
    _same(op(x, -3), [op(a, -3) for a in xs])
    # the operands are not modified
    _same(x, _tensors(0))


def test_reflected_scalar_ops() -> None:
    xs = _tensors(0)
    x = Vector(xs)
    _same(2.0 + x, [2.0 + a for a in xs])
    _same(2.0 - x, [2.0 - a for a in xs])
    _same(0.5 * x, [0.5 * a for a in xs])
    _same(2.0 / x, [2.0 / a for a in xs])
    _same(-x, [-a for a in xs])
    _same(x**2, [a**2 for a in xs])
    _same(sum([x, x, x]), [3 * a for a in xs])


@pytest.mark.parametrize("name", ["iadd", "isub", "imul", "itruediv"])
def test_inplace_ops_modify_the_tensors(name: str) -> None:
    xs, ys = _tensors(0), _tensors(1)
    ref = {"iadd": torch.add, "isub": torch.sub, "imul": torch.mul, "itruediv": torch.div}[name]
    x = Vector([t.clone() for t in xs])
    originals = list(x.tensors)
    result = getattr(x, f"__{name}__")(Vector(ys))
    assert result is x
    assert all(a is b for a, b in zip(x.tensors, originals))  # same storage, changed in place
    _same(x, [ref(a, b) for a, b in zip(xs, ys)])
    x = Vector([t.clone() for t in xs])
    getattr(x, f"__{name}__")(1.5)
    _same(x, [ref(a, 1.5) for a in xs])


def test_container_protocol_and_concatenation() -> None:
    xs, ys = _tensors(0), _tensors(1)
    x, y = Vector(xs), Vector(ys)
    assert len(x) == 3
    assert list(iter(x)) == xs
    assert x[1] is xs[1]
    assert isinstance(x[1:], Vector) and x[1:].tensors == xs[1:]
    z = x & y
    assert len(z) == 6 and z.tensors == xs + ys
    assert Vector.cat(x, y, Vector()).tensors == xs + ys
    assert len(Vector() & Vector()) == 0


def test_length_mismatch_raises() -> None:
    x = Vector(_tensors(0))
    with pytest.raises(ValueError, match="length mismatch"):
        x + x[:2]
    with pytest.raises(ValueError, match="length mismatch"):
        x -= x[:1]


def test_dot_and_norm_match_flat_tensors() -> None:
    xs, ys = _tensors(0), _tensors(1)
    flat_x = torch.cat([t.flatten() for t in xs])
    flat_y = torch.cat([t.flatten() for t in ys])
    torch.testing.assert_close(Vector(xs).dot(Vector(ys)), flat_x @ flat_y)
    torch.testing.assert_close(Vector(xs).norm(), flat_x.norm())


def test_grad_and_zero_grad() -> None:
    w = Vector([torch.randn(3, requires_grad=True), torch.randn(2, requires_grad=True)])
    (w[0].sum() * 2.0).backward()
    g = w.grad()
    torch.testing.assert_close(g[0], torch.full((3,), 2.0))
    torch.testing.assert_close(g[1], torch.zeros(2))  # no gradient reached it: zeros
    w.zero_grad()
    assert all(t.grad is None for t in w)


def test_state_dict_round_trip(tmp_path) -> None:
    xs = _tensors(0)
    w = Vector([t.clone().requires_grad_(True) for t in xs])
    path = tmp_path / "w.pt"
    torch.save(w.state_dict(), path)
    state = torch.load(path, weights_only=True)
    fresh = Vector([torch.zeros_like(t) for t in xs])
    fresh.load_state_dict(state)
    _same(fresh, xs)
    w.save(tmp_path / "w2.pt")
    _same(Vector.load(tmp_path / "w2.pt"), xs)


def test_loading_a_state_dict_of_the_wrong_size_raises(tmp_path) -> None:
    xs = _tensors(0)
    state = Vector(xs).state_dict()
    with pytest.raises(ValueError, match="keys"):
        Vector(xs[:2]).load_state_dict(state)
    with pytest.raises(ValueError, match="shape"):
        Vector([torch.zeros(4, 4), xs[1], xs[2]]).load_state_dict(state)


def test_to_changes_dtype_and_keeps_leaves() -> None:
    w = Vector([torch.randn(3, requires_grad=True), torch.randn(2)])
    d = w.to(dtype=torch.float64)
    assert d.dtype == torch.float64 and d.device == torch.device("cpu")
    assert d[0].requires_grad and d[0].is_leaf and not d[1].requires_grad
    torch.testing.assert_close(d[0], w[0].detach().double())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_cuda_round_trip() -> None:
    w = Vector(_tensors(0))
    c = w.to("cuda")
    assert c.device.type == "cuda"
    _same(c.to("cpu"), _tensors(0))
