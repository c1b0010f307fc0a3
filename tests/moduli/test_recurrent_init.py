"""W_hh initialisation rules (model.recurrent_init): each gives the matrix it claims, in every task
model and layer, leaves the other weights as torch's default draws them, and the lottery ticket's
re-initialisation follows the same rule."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from moduli.config import RECURRENT_INITS, load_config
from moduli.models import AddingRNN, ElmanStack, PathIntegrationRNN, RNNLanguageModel
from moduli.models.recurrent_init import RECURRENT_INITS as MODEL_RULES
from moduli.models.recurrent_init import init_recurrent_
from moduli.pruning import lottery_reset
from moduli.pruning import lottery as lottery_module
from moduli.run_dir import RunDir
from moduli.training import Trainer

ROOT = Path(__file__).resolve().parents[2]
N = 48

pytestmark = pytest.mark.usefixtures("one_thread")


def build(kind: str, rule: str, scale: float = 1.0, seed: int = 0):
    """A task model whose every W_hh follows ``rule`` (hidden size N)."""
    torch.manual_seed(seed)
    init = {"recurrent_init": rule, "recurrent_init_scale": scale}
    if kind == "navigation":
        return PathIntegrationRNN(num_place_cells=7, hidden_size=N, **init)
    if kind == "adding":
        return AddingRNN(hidden_size=N, **init)
    return RNNLanguageModel(11, embedding_size=5, hidden_size=N, num_layers=2, **init)


def assert_rule(w: torch.Tensor, rule: str, scale: float = 1.0) -> None:
    """``w`` (N, N) is what ``rule`` claims."""
    eye = torch.eye(w.shape[0])
    if rule == "identity":
        assert torch.equal(w, eye * scale)
    elif rule == "orthogonal":
        torch.testing.assert_close(w @ w.T, eye * scale**2, atol=1e-5, rtol=0)
        assert (w - torch.diag(torch.diagonal(w))).abs().max() > 0.05  # a random rotation, not the identity
    elif rule == "he_uniform":
        bound = math.sqrt(6.0 / w.shape[1])
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound  # fills U(-b, b) up to its bound
        assert w.abs().max() > 1.5 / math.sqrt(w.shape[1])  # beyond torch's default bound 1/sqrt(N)
    else:
        assert w.abs().max() <= 1.0 / math.sqrt(w.shape[1])


def test_the_rules_are_the_config_choices():
    assert RECURRENT_INITS == MODEL_RULES == ("default", "identity", "orthogonal", "he_uniform")


@pytest.mark.parametrize("kind", ["navigation", "adding", "language"])
@pytest.mark.parametrize("rule, scale", [("default", 1.0), ("identity", 1.0), ("identity", 0.5), ("orthogonal", 1.0),
                                         ("orthogonal", 1.3), ("he_uniform", 1.0)])
def test_every_recurrent_matrix_follows_the_rule(kind, rule, scale):
    model, reference = build(kind, rule, scale), build(kind, "default")
    recurrent = model.rnn.recurrent_weights()
    assert len(recurrent) == (2 if kind == "language" else 1)
    for w in recurrent:
        assert_rule(w.detach(), rule, scale)
    ours = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        if "weight_hh" in name:
            assert torch.equal(ours[name], p) == (rule == "default"), name
        elif rule in ("default", "identity") or name == "rnn.weight_ih_l0":
            # identity draws nothing, so every other weight is torch's default draw; a random rule
            # draws after the first layer's other weights, so only those are unchanged
            assert torch.equal(ours[name], p), name


def test_default_rule_is_torchs_rnn_initialisation_bit_for_bit():
    torch.manual_seed(3)
    ours = ElmanStack(4, N, 1, "relu", bias=True)
    torch.manual_seed(3)
    theirs = torch.nn.RNN(4, N, nonlinearity="relu", bias=True)
    for name, p in theirs.named_parameters():
        assert torch.equal(dict(ours.named_parameters())[name], p), name


@torch.no_grad()
def test_identity_keeps_a_relu_state_with_zero_input():
    stack = ElmanStack(2, N, 1, "relu", recurrent_init="identity")
    h0 = torch.rand(1, 3, N)
    out, _ = stack(torch.zeros(9, 3, 2), h0)
    assert torch.equal(out, h0.expand(9, 3, N))
    default = ElmanStack(2, N, 1, "relu")
    out, _ = default(torch.zeros(9, 3, 2), h0)
    assert float(out[-1].norm()) < 0.5 * float(h0.norm())  # torch's default forgets the state


def test_init_recurrent_uses_the_generator_and_refuses_bad_input():
    a, b = torch.empty(N, N), torch.empty(N, N)
    for rule in ("orthogonal", "he_uniform"):
        init_recurrent_(a, rule, generator=torch.Generator().manual_seed(5))
        init_recurrent_(b, rule, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="recurrent_init must be one of default, identity, orthogonal, he_uniform"):
        ElmanStack(2, 4, recurrent_init="eye")
    with pytest.raises(ValueError, match="only applies to identity or orthogonal, not 'he_uniform'"):
        ElmanStack(2, 4, recurrent_init="he_uniform", recurrent_init_scale=2.0)
    with pytest.raises(ValueError, match="must be a number > 0"):
        ElmanStack(2, 4, recurrent_init="identity", recurrent_init_scale=0.0)
    with pytest.raises(ValueError, match="square"):
        init_recurrent_(torch.empty(3, 4), "identity")


@pytest.mark.parametrize("rule", ["identity", "orthogonal", "he_uniform"])
def test_lottery_reset_reinitialises_recurrent_weights_by_the_rule(rule):
    model = build("adding", rule)
    w = model.rnn.weight_hh_l0
    with torch.no_grad():
        w.add_(torch.randn_like(w))  # "trained": no longer what the rule gives
    masks = {"rnn.weight_hh_l0": torch.ones(N, N, dtype=torch.bool), "rnn.weight_ih_l0": torch.ones(N, 2, dtype=torch.bool)}
    lottery_reset(model, masks, generator=torch.Generator().manual_seed(1))
    assert_rule(w.detach(), rule)
    assert model.rnn.weight_ih_l0.abs().max() <= 1.0 / math.sqrt(N)  # W_ih keeps torch's default rule
    pruned = torch.rand(N, N, generator=torch.Generator().manual_seed(2)) > 0.5
    lottery_reset(model, {"rnn.weight_hh_l0": pruned}, generator=torch.Generator().manual_seed(1))
    fresh = build("adding", rule)
    lottery_reset(fresh, {"rnn.weight_hh_l0": torch.ones(N, N, dtype=torch.bool)}, generator=torch.Generator().manual_seed(1))
    assert torch.equal(w.detach(), fresh.rnn.weight_hh_l0.detach() * pruned)  # the rule's matrix, then the mask


@pytest.mark.parametrize("rule", ["identity", "orthogonal", "he_uniform"])
def test_lottery_phase_of_a_training_run_follows_the_rule(tmp_path, monkeypatch, rule):
    cfg = load_config(
        [ROOT / "configs" / "adding.yaml", ROOT / "configs" / "tiny.yaml"],
        [f"out_dir={tmp_path}", "pruning.lottery=true", f"model.recurrent_init={rule}", "regularizer.kind=none"],
    )
    trainer = Trainer(cfg, RunDir.create(cfg), quiet=True)
    assert_rule(trainer.model.rnn.weight_hh_l0.detach(), rule)
    trainer.prune(cfg.train.epochs - 1)  # the final mask (95 %)
    mask = trainer.pruner.masks["rnn.weight_hh_l0"].clone()
    assert 0 < int(mask.sum()) < mask.numel()
    before_mask = {}
    original = lottery_module.apply_masks_

    def capture(params, masks):
        before_mask.update({n: p.detach().clone() for n, p in params.items()})
        return original(params, masks)

    monkeypatch.setattr(lottery_module, "apply_masks_", capture)
    trainer.start_lottery_phase()
    assert_rule(before_mask["rnn.weight_hh_l0"], rule)  # re-initialised by the rule ...
    assert torch.equal(trainer.model.rnn.weight_hh_l0.detach(), before_mask["rnn.weight_hh_l0"] * mask)  # ... then masked
