"""Compounds: the Modula README API, known masses and sensitivities, forward passes against loops."""

from __future__ import annotations

import math

import pytest
import torch

from modula_core import Vector
from modula_core.atom import Conv2D, Embed, Linear
from modula_core.bond import Identity, ReLU
from modula_core.compound import GPT, MLP, ResCNN, ResMLP, residual
from modula_core.linalg import NS_COEFFICIENTS

torch.set_num_threads(1)


def _linears(module) -> list:
    return [a for a in module.atoms() if isinstance(a, (Linear, Conv2D, Embed))]


def test_readme_api_verbatim() -> None:
    torch.manual_seed(0)
    from modula_core.atom import Linear
    from modula_core.bond import ReLU

    mlp = Linear(10, 200) @ ReLU() @ Linear(200, 100)
    weights = mlp.initialize(device="cpu")

    from torch import no_grad, randn

    data, target = randn(100), randn(10)
    losses = []
    for step in range(steps := 20):
        output = mlp(data, weights)

        loss = (target - output).square().mean()
        loss.backward()

        with no_grad():
            mlp.normalize(grad := weights.grad())  # normalize the gradient in the modular norm
            weights -= 0.1 * grad
            weights.zero_grad()

            mlp.regularize(weights, strength=0.01)  # regularize the weight vector
        losses.append(loss.item())
    assert steps == 20 and losses[-1] < 0.2 * losses[0]
    assert mlp.mass == 2 and mlp.sensitivity == pytest.approx(1 / math.sqrt(2))
    mlp(data, weights).sum().backward()
    update = mlp.dualize(weights.grad(), target_norm=1.0)
    assert isinstance(update, Vector) and len(update) == 2
    assert mlp.tare(absolute=4.0) is mlp and mlp.mass == pytest.approx(4.0)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mlp_mass_sensitivity_and_forward(depth: int) -> None:
    mlp = MLP(output_dim=3, input_dim=7, width=6, depth=depth)
    assert mlp.mass == depth and len(_linears(mlp)) == depth
    assert mlp.sensitivity == pytest.approx((1 / math.sqrt(2)) ** (depth - 1), rel=1e-12)
    w = mlp.initialize(generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 7)
    h = x
    for i, wi in enumerate(w):
        h = math.sqrt(wi.shape[0] / wi.shape[1]) * h @ wi.T
        if i < depth - 1:
            h = torch.relu(h)
    torch.testing.assert_close(mlp(x, w), h)


@pytest.mark.parametrize("num_blocks, block_depth", [(1, 1), (2, 2), (3, 1)])
def test_resmlp_mass_sensitivity_and_forward(num_blocks: int, block_depth: int) -> None:
    width, in_dim, out_dim = 6, 12, 3
    net = ResMLP(width, num_blocks, block_depth, in_dim, out_dim)
    assert net.mass == pytest.approx(3.0)  # input layer 1 + blocks tared to 1 + read-out 1
    assert net.sensitivity == pytest.approx(1.0, rel=1e-12)
    atoms = _linears(net)
    assert len(atoms) == 2 + num_blocks * block_depth
    block_masses = sorted(a.mass for a in atoms)[: num_blocks * block_depth]
    assert block_masses == pytest.approx([1 / (num_blocks * block_depth)] * (num_blocks * block_depth))

    w = net.initialize(generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)  # flattened to 12 features
    lin = lambda h, m: math.sqrt(m.shape[0] / m.shape[1]) * h @ m.T  # noqa: E731
    h = lin(x.flatten(1), w[0])
    k = 1
    for _ in range(num_blocks):
        r = h
        for _ in range(block_depth):
            r = r / r.square().mean(-1, keepdim=True).sqrt()
            r = lin(r, w[k]).abs()
            r = r - r.mean(-1, keepdim=True)
            k += 1
        h = (1 - 1 / num_blocks) * h + r / num_blocks
    expected = lin(h, w[k])
    torch.testing.assert_close(net(x, w), expected)


def test_rescnn_mass_sensitivity_and_shapes() -> None:
    net = ResCNN(width=4, num_blocks=2, block_depth=2, input_dim=3, output_dim=5)
    assert net.mass == pytest.approx(3.0)
    assert net.sensitivity == pytest.approx(1.0, rel=1e-12)
    assert sum(isinstance(a, Conv2D) for a in net.atoms()) == 1 + 4
    w = net.initialize(generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 6, 6)
    y = net(x, w)
    assert y.shape == (2, 5)
    y.square().sum().backward()
    g = w.grad()
    net.normalize(g, target_norm=1.0)
    assert all(torch.isfinite(t).all() for t in g)


def test_gpt_mass_sensitivity_and_causality() -> None:
    vocab, context = 11, 6
    gpt = GPT(vocab_size=vocab, num_heads=2, d_embed=8, d_query=4, d_value=4, num_blocks=2, context=context)
    assert gpt.mass == pytest.approx(7.0)  # embeddings 1 + blocks 5 + read-out 1
    assert gpt.sensitivity == pytest.approx(1.0, rel=1e-12)
    assert GPT(vocab, 2, 8, 4, 4, 2, blocks_mass=3, context=context).mass == pytest.approx(5.0)
    atoms = _linears(gpt)
    embeds = [a for a in atoms if isinstance(a, Embed)]
    assert [e.mass for e in embeds] == pytest.approx([0.5, 0.5])
    assert len(atoms) == 2 + 2 * (4 + 2) + 1  # 2 embeddings, per block Q K V W + 2 MLP layers, read-out
    assert sum(a.mass for a in atoms if not isinstance(a, Embed)) == pytest.approx(5.0 + 1.0)

    w = gpt.initialize(generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, vocab, (3, context), generator=torch.Generator().manual_seed(1))
    logits = gpt(ids, w)
    assert logits.shape == (3, context, vocab)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % vocab
    with torch.no_grad():
        torch.testing.assert_close(gpt(changed, w)[:, :-1], logits[:, :-1])  # the past ignores the future
        assert not torch.allclose(gpt(changed, w)[:, -1], logits[:, -1])
    with pytest.raises(ValueError, match="context length"):
        gpt(torch.zeros(1, context + 1, dtype=torch.long), w)


@pytest.mark.parametrize("schedule", ["tuned6"])
def test_gpt_dualize_sets_the_modular_norm(schedule: str) -> None:
    gpt = GPT(vocab_size=11, num_heads=2, d_embed=8, d_query=4, d_value=4, num_blocks=1, context=4)
    w = gpt.initialize(generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 11, (4, 4), generator=torch.Generator().manual_seed(2))
    torch.nn.functional.cross_entropy(gpt(ids, w).flatten(0, 1), ids.flatten()).backward()
    update = gpt.dualize(w.grad(), target_norm=0.5)
    assert all(torch.isfinite(t).all() for t in update)
    # singular values of these gradients are not bounded below, so only the upper bound of the
    # Newton–Schulz polynomial is sure; the read-out and embedding parts reach the target
    x = torch.linspace(0, 1, 10_001)
    for a, b, c in NS_COEFFICIENTS[schedule]:
        x = a * x + b * x**3 + c * x**5
    assert 0.5 * 0.9 <= gpt.norm(update) <= 0.5 * max(1.0, x.max().item()) * (1 + 1e-5)  # Embed: exact
    assert update.dot(w.grad()).item() > 0


def test_residual_helper() -> None:
    block = Linear(3, 3)
    assert residual(block, 1.0) is block
    r = residual(block, 0.25)
    assert r.sensitivity == pytest.approx(1.0) and r.mass == 1
    with pytest.raises(ValueError, match="residual weight"):
        residual(block, 0.0)
    # Modula's README idiom, written with an Identity instance
    res = ((1 - 1 / 4) * Identity() + 1 / 4 * (Linear(3, 3) @ ReLU())) ** 4
    assert res.mass == 4 and res.sensitivity < 1


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MLP(0, 3, 4, 2), "output_dim"),
        (lambda: MLP(2, 3, 4, 0), "depth"),
        (lambda: ResMLP(4, 0, 1, 3, 2), "num_blocks"),
        (lambda: ResCNN(4, 1, 1, 3, 2, kernel_size=2.5), "kernel_size"),
        (lambda: GPT(10, 2, 8, 4, 4, 1, blocks_mass=0), "blocks_mass"),
        (lambda: GPT(10, 2, 8, 4, 4, 1, context=0), "context"),
    ],
)
def test_bad_compound_arguments(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()
