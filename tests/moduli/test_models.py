"""Tests of moduli.models: ElmanStack against torch.nn.RNN with copied weights (outputs, final
states, gradients), the three task heads against hand-assembled torch computations, the summed
penalty, parameter groups, prunable names and bad input."""

from __future__ import annotations

import geoopt
import pytest
import torch
from torch import nn

from moduli.inhibitors import DoG
from moduli.manifolds import Torus
from moduli.models import AddingRNN, ElmanStack, PathIntegrationRNN, RNNLanguageModel
from moduli.regularizer import ModuliRegularizer

torch.set_num_threads(1)


def reference_rnn(stack: ElmanStack) -> nn.RNN:
    """A torch.nn.RNN with the stack's weights copied in (by the shared parameter names)."""
    ref = nn.RNN(
        stack.input_size,
        stack.hidden_size,
        num_layers=stack.num_layers,
        nonlinearity=stack.nonlinearity,
        bias=stack.bias,
    )
    own = dict(stack.named_parameters())
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(own[name])
    assert {n for n, _ in ref.named_parameters()} == {n for n in own if not n.startswith("regularizers.")}
    return ref


def learned_factory(seed_base: int = 0, calls: list | None = None):
    def make(layer: int, hidden: int) -> ModuliRegularizer:
        if calls is not None:
            calls.append((layer, hidden))
        gen = torch.Generator().manual_seed(seed_base + layer)
        return ModuliRegularizer(Torus(), hidden, DoG(), learn_embedding=True, strength=0.1, generator=gen)

    return make


# ---------------------------------------------------------------------------------------------
# ElmanStack vs torch.nn.RNN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("fused", [True, False])
def test_elman_stack_matches_torch_rnn(nonlinearity, bias, num_layers, fused):
    torch.manual_seed(0)
    t, b, i, h = 6, 3, 4, 5
    stack = ElmanStack(i, h, num_layers, nonlinearity, bias=bias)
    for cell in stack.cells:
        cell.fused = fused
    ref = reference_rnn(stack)
    x = torch.randn(t, b, i)
    h0 = torch.randn(num_layers, b, h)

    out, h_n = stack(x, h0)
    out_ref, h_n_ref = ref(x, h0)
    assert out.shape == (t, b, h) and h_n.shape == (num_layers, b, h)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_n, h_n_ref, rtol=1e-5, atol=1e-5)

    # no h0: zero initial state, as nn.RNN
    out0, h_n0 = stack(x)
    out0_ref, h_n0_ref = ref(x)
    torch.testing.assert_close(out0, out0_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_n0, h_n0_ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, out0)  # h0 is actually used

    # gradients of the same loss agree parameter by parameter
    (out.square().sum() + h_n.sum()).backward()
    (out_ref.square().sum() + h_n_ref.sum()).backward()
    own = dict(stack.named_parameters())
    for name, p in ref.named_parameters():
        torch.testing.assert_close(own[name].grad, p.grad, rtol=1e-4, atol=1e-5)


def test_elman_stack_parameter_names_and_init():
    stack = ElmanStack(3, 8, 2, bias=True)
    names = [n for n, _ in stack.named_parameters()]
    assert names == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
    ]  # fmt: skip
    bound = 1 / 8**0.5
    for p in stack.parameters():
        assert float(p.detach().abs().max()) <= bound
    assert stack.weight_ih_l1.shape == (8, 8) and stack.weight_ih_l0.shape == (8, 3)
    assert [id(w) for w in stack.recurrent_weights()] == [id(stack.weight_hh_l0), id(stack.weight_hh_l1)]


def test_elman_stack_bad_input():
    with pytest.raises(ValueError, match="hidden_size"):
        ElmanStack(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        ElmanStack(3, 4, num_layers=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        ElmanStack(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="dropout"):
        ElmanStack(3, 4, dropout=1.0)
    with pytest.raises(ValueError, match="dropout"):
        ElmanStack(3, 4, dropout="0.1")
    with pytest.raises(TypeError, match="ModuliRegularizer"):
        ElmanStack(3, 4, regularizer=lambda layer, n: nn.Identity())
    stack = ElmanStack(3, 4, 2)
    with pytest.raises(ValueError, match=r"\(T, B, 3\)"):
        stack(torch.zeros(5, 2, 4))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 4\)"):
        stack(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(TypeError, match="tensor"):
        stack([[[0.0] * 3]])
    with pytest.raises(TypeError, match="h0"):
        stack(torch.zeros(5, 2, 3), [0.0])


def test_regulariser_for_wrong_hidden_size_raises():
    def wrong(layer: int, hidden: int) -> ModuliRegularizer:
        return ModuliRegularizer(Torus(), hidden + 1, DoG(), generator=torch.Generator().manual_seed(0))

    with pytest.raises(ValueError, match=r"built for 7 neurons.*has 6.*num_neurons=6"):
        ElmanStack(3, 6, regularizer=wrong)
    with pytest.raises(ValueError, match="num_neurons=6"):
        AddingRNN(hidden_size=6, regularizer=wrong)


# ---------------------------------------------------------------------------------------------
# penalty and parameter groups
# ---------------------------------------------------------------------------------------------


def test_penalty_is_sum_of_layer_penalties():
    calls: list = []
    model = RNNLanguageModel(11, embedding_size=5, hidden_size=6, num_layers=3, regularizer=learned_factory(50, calls))
    assert calls == [(0, 6), (1, 6), (2, 6)]
    regs = list(model.rnn.regularizers)
    assert len(regs) == 3
    want = 0.0
    for layer, reg in enumerate(regs):
        w = getattr(model.rnn, f"weight_hh_l{layer}").detach()
        # independent of forward(): strength * mean(C * |W|)
        want += 0.1 * float((reg.coefficients().detach() * w.abs()).mean())
    got = model.penalty()
    assert got.dim() == 0
    assert float(got.detach()) == pytest.approx(want, rel=1e-6)
    # gradients reach every layer's W_hh and every embedding
    got.backward()
    for layer, reg in enumerate(regs):
        assert float(getattr(model.rnn, f"weight_hh_l{layer}").grad.abs().sum()) > 0
        assert torch.isfinite(reg.embedding.grad).all() and float(reg.embedding.grad.abs().sum()) > 0


def test_penalty_without_regulariser_is_zero():
    model = AddingRNN(hidden_size=5)
    p = model.penalty()
    assert p.dim() == 0 and float(p) == 0.0
    assert model.embedding_parameters() == []


@pytest.mark.parametrize(
    "build",
    [
        lambda f: AddingRNN(hidden_size=6, regularizer=f),
        lambda f: PathIntegrationRNN(num_place_cells=5, hidden_size=6, regularizer=f),
        lambda f: RNNLanguageModel(9, embedding_size=4, hidden_size=6, num_layers=2, regularizer=f),
    ],
    ids=["adding", "path", "lm"],
)
def test_parameter_groups_partition_and_prunable_names(build):
    model = build(learned_factory())
    emb = model.embedding_parameters()
    wts = model.weight_parameters()
    all_ids = [id(p) for p in model.parameters()]
    assert len(emb) == model.rnn.num_layers
    assert all(isinstance(p, geoopt.ManifoldParameter) for p in emb)
    assert not any(isinstance(p, geoopt.ManifoldParameter) for p in wts)
    assert {id(p) for p in emb}.isdisjoint({id(p) for p in wts})
    assert sorted(id(p) for p in emb + wts) == sorted(all_ids)
    assert len(all_ids) == len(set(all_ids))

    params = dict(model.named_parameters())
    names = model.prunable_names()
    assert names and len(names) == len(set(names))
    for name in names:
        assert name in params and params[name].dim() == 2
        assert not isinstance(params[name], geoopt.ManifoldParameter)
    assert "rnn.weight_hh_l0" in names

    # fixed embeddings are buffers: no embedding parameters at all
    fixed = build(lambda layer, n: ModuliRegularizer(Torus(), n, DoG(), generator=torch.Generator().manual_seed(layer)))
    assert fixed.embedding_parameters() == []
    assert len(fixed.weight_parameters()) == len(list(fixed.parameters()))


# ---------------------------------------------------------------------------------------------
# task heads
# ---------------------------------------------------------------------------------------------


def test_path_integration_rnn():
    torch.manual_seed(1)
    t, b, p, h = 5, 3, 7, 6
    model = PathIntegrationRNN(num_place_cells=p, hidden_size=h, nonlinearity="relu", regularizer=learned_factory())
    names = [n for n, _ in model.named_parameters()]
    assert not any("bias" in n for n in names)
    assert model.encoder.bias is None and model.decoder.bias is None and not model.rnn.bias
    assert model.prunable_names() == ["encoder.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "decoder.weight"]

    velocity = torch.randn(t, b, 2)
    start = torch.softmax(torch.randn(b, p), dim=-1)
    out = model(velocity, start)
    assert out.shape == (t, b, p)

    ref = reference_rnn(model.rnn)
    h0 = (start @ model.encoder.weight.T).unsqueeze(0)
    states, _ = ref(velocity, h0)
    want = states @ model.decoder.weight.T
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    # the start activation matters (it feeds h0)
    other = model(velocity, torch.softmax(torch.randn(b, p), dim=-1))
    assert not torch.allclose(out, other)


def test_language_model():
    torch.manual_seed(2)
    vocab, e, h, layers, t, b = 13, 4, 6, 3, 5, 2
    model = RNNLanguageModel(vocab, embedding_size=e, hidden_size=h, num_layers=layers, regularizer=learned_factory(10))
    model.eval()
    tokens = torch.randint(0, vocab, (t, b))
    logits, h_n = model(tokens)
    assert logits.shape == (t, b, vocab) and h_n.shape == (layers, b, h)

    ref = reference_rnn(model.rnn)
    states, h_n_ref = ref(model.embedding.weight[tokens])
    torch.testing.assert_close(logits, model.decoder(states), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h_n, h_n_ref, rtol=1e-5, atol=1e-5)
    # carrying the hidden state
    logits2, _ = model(tokens, h_n)
    states2, _ = ref(model.embedding.weight[tokens], h_n_ref)
    torch.testing.assert_close(logits2, model.decoder(states2), rtol=1e-5, atol=1e-5)

    regs = list(model.rnn.regularizers)
    assert len(regs) == layers and len({id(r) for r in regs}) == layers
    assert len({id(r.embedding) for r in regs}) == layers
    for a in range(layers):
        for c in range(a + 1, layers):
            assert not torch.equal(regs[a].embedding, regs[c].embedding)

    inputs = model.input_weights()
    want = [model.embedding.weight, model.decoder.weight] + [getattr(model.rnn, f"weight_ih_l{k}") for k in range(layers)]
    assert [id(p) for p in inputs] == [id(p) for p in want]
    assert not {id(w) for w in model.rnn.recurrent_weights()} & {id(p) for p in inputs}
    params = dict(model.named_parameters())
    assert set(model.prunable_names()) == {"embedding.weight", "decoder.weight"} | {
        f"rnn.{k}_l{layer}" for layer in range(layers) for k in ("weight_ih", "weight_hh")
    }
    assert set(model.prunable_names()) <= set(params)


def test_adding_rnn():
    torch.manual_seed(3)
    t, b, h = 7, 4, 5
    model = AddingRNN(hidden_size=h, regularizer=learned_factory())
    x = torch.randn(t, b, 2)
    y = model(x)
    assert y.shape == (b, 1)
    ref = reference_rnn(model.rnn)
    states, h_n = ref(x)
    torch.testing.assert_close(y, model.readout(states[-1]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y, model.readout(h_n[-1]), rtol=1e-5, atol=1e-5)
    assert model.rnn.bias and model.readout.bias is not None
    assert set(model.prunable_names()) <= set(dict(model.named_parameters()))


def test_models_train_one_step_with_riemannian_optimizer():
    torch.manual_seed(4)
    model = AddingRNN(hidden_size=6, regularizer=learned_factory())
    opt_w = torch.optim.Adam(model.weight_parameters(), lr=1e-2)
    opt_e = geoopt.optim.RiemannianAdam(model.embedding_parameters(), lr=1e-1)
    x, target = torch.randn(5, 3, 2), torch.randn(3, 1)
    before = [p.detach().clone() for p in model.embedding_parameters()]
    loss = (model(x) - target).square().mean() + model.penalty()
    loss.backward()
    opt_w.step()
    opt_e.step()
    for p, q in zip(model.embedding_parameters(), before):
        assert not torch.equal(p, q)
        assert torch.all(p >= 0) and torch.all(p < 10.0)


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_models_on_cuda_match_cpu():
    torch.manual_seed(5)
    model = RNNLanguageModel(9, embedding_size=4, hidden_size=6, num_layers=2, regularizer=learned_factory())
    model.eval()
    tokens = torch.randint(0, 9, (4, 2))
    logits, h_n = model(tokens)
    penalty = model.penalty()
    model = model.cuda()
    logits_c, h_n_c = model(tokens.cuda())
    assert logits_c.device.type == "cuda"
    torch.testing.assert_close(logits_c.cpu(), logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(h_n_c.cpu(), h_n, rtol=1e-4, atol=1e-4)
    p = model.penalty()
    assert p.device.type == "cuda"
    assert float(p) == pytest.approx(float(penalty), rel=1e-5)
    p.backward()
    assert all(torch.isfinite(e.grad).all() for e in model.embedding_parameters())
