"""Sparse inference export: Hilbert order, neuron reordering, and outputs equal to the dense masked model."""

from __future__ import annotations

import pytest
import torch

from moduli import DoG, ModuliRegularizer, Torus
from moduli.manifolds import Circle, Sphere
from moduli.models import ElmanStack, PathIntegrationRNN
from moduli.pruning import moduli_masks, random_masks_like
from moduli.sparse_inference import block_density, export_sparse, hilbert_index, manifold_order

N = 64  # hidden size of the test models (4 x 4 tiles of 16)


def _dense(t: torch.Tensor) -> torch.Tensor:
    return t.to_dense() if t.layout != torch.strided else t


def _pruned_stack(nonlinearity: str, layers: int = 2, bias: bool = True, sparsity: float = 0.8) -> ElmanStack:
    """A stack with torus-DoG regularisers whose W_hh (moduli masks) and W_ih (random) are pruned."""
    torch.manual_seed(0)
    gens = [torch.Generator().manual_seed(10 + layer) for layer in range(layers)]
    model = ElmanStack(3, N, layers, nonlinearity, bias=bias,
                       regularizer=lambda l, h: ModuliRegularizer(Torus(), h, DoG(), generator=gens[l]))
    with torch.no_grad():
        for layer in range(layers):
            w_hh = getattr(model, f"weight_hh_l{layer}")
            w_hh.mul_(moduli_masks({"w": model.regularizers[layer].coefficients()}, sparsity)["w"])
            w_hh.mul_(2.0)  # keep the states from decaying to 0 so that the comparison means something
            w_ih = getattr(model, f"weight_ih_l{layer}")
            w_ih.mul_(torch.rand(w_ih.shape) > 0.3)
    return model


def test_hilbert_known_values_and_adjacency():
    # order 1: the curve visits (0,0), (0,1), (1,1), (1,0)
    d = hilbert_index(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 0]), 1)
    assert d.tolist() == [0, 1, 2, 3]
    for order in (2, 3, 4):
        side = 1 << order
        ix, iy = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        d = hilbert_index(ix.reshape(-1), iy.reshape(-1), order)
        assert sorted(d.tolist()) == list(range(side * side))  # a bijection onto the curve positions
        pos = torch.empty(side * side, 2, dtype=torch.long)
        pos[d] = torch.stack([ix.reshape(-1), iy.reshape(-1)], 1)
        steps = (pos[1:] - pos[:-1]).abs().sum(1)
        assert bool((steps == 1).all())  # consecutive positions are edge-adjacent cells


def test_hilbert_rejects_bad_input():
    with pytest.raises(ValueError, match="cell indices"):
        hilbert_index(torch.tensor([4]), torch.tensor([0]), 2)
    with pytest.raises(TypeError, match="integer"):
        hilbert_index(torch.tensor([0.5]), torch.tensor([0.0]), 2)


@pytest.mark.parametrize("manifold", [Torus(), Torus(dim=1), Circle(), Sphere(dim=2)])
def test_manifold_order_is_a_permutation(manifold):
    points = manifold.random(50, generator=torch.Generator().manual_seed(3))
    p = manifold_order(manifold, points)
    assert torch.equal(torch.sort(p).values, torch.arange(50))
    if isinstance(manifold, Circle):
        angles = torch.atan2(points[p, 1], points[p, 0])
        assert bool((angles[1:] >= angles[:-1]).all())


def test_reordering_makes_torus_local_mask_block_sparse():
    n = 1024
    reg = ModuliRegularizer(Torus(), n, DoG(), generator=torch.Generator().manual_seed(0))
    mask = moduli_masks({"w": reg.coefficients()}, 0.95)["w"]
    p = manifold_order(reg.manifold, reg.embedding)
    ordered = mask[p][:, p]
    assert ordered.sum() == mask.sum()
    before, after = block_density(mask, 16), block_density(ordered, 16)
    assert before > 0.95  # random neuron order: nearly every tile is touched
    assert after < 0.5 * before
    # a random mask of the same sparsity gets no such structure from the same order
    rand = random_masks_like({"w": mask}, generator=torch.Generator().manual_seed(1))["w"]
    assert block_density(rand[p][:, p], 16) > 0.95


def test_block_density_known_value():
    m = torch.zeros(32, 32)
    m[0, 0] = 1.0
    m[20, 31] = 1.0
    assert block_density(m, 16) == 0.5
    assert block_density(m, 8) == 2 / 16


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("reorder", ["manifold", "none"])
@pytest.mark.parametrize("fmt", ["csr", "bsr", "dense", "auto"])
def test_stack_export_matches_dense_masked_model(nonlinearity, reorder, fmt):
    model = _pruned_stack(nonlinearity)
    x = torch.randn(6, 3, 3)
    h0 = torch.randn(2, 3, N)
    ref_out, ref_hn = model(x, h0)
    sparse = export_sparse(model, reorder=reorder, format=fmt, block_size=16, sparse_io=True)
    out, hn = sparse(x, h0)
    assert ref_out.abs().mean() > 1e-2  # states did not vanish
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hn, ref_hn, atol=1e-5, rtol=1e-5)
    out0, _ = sparse(x)
    torch.testing.assert_close(out0, model(x)[0], atol=1e-5, rtol=1e-5)
    if fmt in ("csr", "bsr"):
        assert sparse.formats()["w_hh_l0"] == fmt


def test_export_stores_the_permuted_matrix():
    model = _pruned_stack("relu", layers=1)
    sparse = export_sparse(model, reorder="manifold", format="csr")
    p = sparse.permutations[0]
    assert torch.equal(torch.sort(p).values, torch.arange(N))
    assert not torch.equal(p, torch.arange(N))
    torch.testing.assert_close(_dense(sparse.w_hh[0]), model.weight_hh_l0.detach()[p][:, p], atol=0, rtol=0)
    assert sparse.w_hh[0].layout == torch.sparse_csr
    assert sparse.w_hh[0].values().numel() == int((model.weight_hh_l0 != 0).sum())


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("fmt", ["csr", "bsr", "auto"])
def test_path_integration_export_matches(nonlinearity, fmt):
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(5)
    model = PathIntegrationRNN(20, N, nonlinearity,
                               regularizer=lambda l, h: ModuliRegularizer(Torus(), h, DoG(), generator=gen))
    with torch.no_grad():
        mask = moduli_masks({"w": model.rnn.regularizers[0].coefficients()}, 0.9)["w"]
        model.rnn.weight_hh_l0.mul_(mask * 3.0)
        model.decoder.weight.mul_(torch.rand(model.decoder.weight.shape) > 0.5)
    velocity = torch.randn(7, 4, 2)
    start = torch.softmax(torch.randn(4, 20), -1)
    ref = model(velocity, start)
    for sparse_io in (False, True):
        sparse = export_sparse(model, reorder="manifold", format=fmt, sparse_io=sparse_io)
        torch.testing.assert_close(sparse(velocity, start), ref, atol=1e-5, rtol=1e-5)


def test_explicit_positions_and_errors():
    torch.manual_seed(2)
    model = ElmanStack(3, N, 1, "relu")
    with torch.no_grad():
        model.weight_hh_l0.mul_(torch.rand(N, N) > 0.8)
    with pytest.raises(ValueError, match="needs neuron positions"):
        export_sparse(model, reorder="manifold")
    points = Circle().random(N, generator=torch.Generator().manual_seed(0))
    sparse = export_sparse(model, reorder="manifold", positions=[(Circle(), points)], format="csr")
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(sparse(x)[0], model(x)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="reorder"):
        export_sparse(model, reorder="hilbert")
    with pytest.raises(ValueError, match="format"):
        export_sparse(model, reorder="none", format="coo")
    with pytest.raises(TypeError, match="ElmanStack"):
        export_sparse(torch.nn.RNN(3, N), reorder="none")
    with pytest.raises(ValueError, match="divisible"):
        export_sparse(ElmanStack(3, 40, 1), reorder="none", format="bsr", block_size=16)
    with pytest.raises(ValueError, match="shape"):
        sparse(torch.randn(4, 2, 5))
    with pytest.raises(TypeError, match="dtype"):
        sparse(x.double())
