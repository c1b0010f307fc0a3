"""The three examples in experiments/examples run, learn, and agree with independent computations."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from modula_core import Vector

EXAMPLES = Path(__file__).resolve().parents[2] / "experiments" / "examples"
sys.path.insert(0, str(EXAMPLES))  # spawned data-parallel workers import the example by module name

import data_parallel  # noqa: E402
import gradient_accumulation  # noqa: E402
import hello_world  # noqa: E402

torch.set_num_threads(1)


def test_hello_world_loss_falls() -> None:
    losses = hello_world.main(steps=15, input_dim=50, width=200, output_dim=10)
    assert len(losses) == 15
    assert losses[-1] < 0.2 * losses[0]


def test_accumulated_gradient_equals_the_full_batch_gradient() -> None:
    gen = torch.Generator().manual_seed(3)
    model = gradient_accumulation.MLP(output_dim=4, input_dim=16, width=12, depth=3)
    weights = model.initialize(generator=gen, dtype=torch.float64)
    data, target = torch.randn(20, 16, generator=gen, dtype=torch.float64), torch.randn(20, 4, generator=gen, dtype=torch.float64)
    full_loss = (model(data, weights) - target).square().mean()
    full_loss.backward()
    full = Vector([t.clone() for t in weights.grad()])
    for micro in (1, 3, 7, 20):  # 3 and 7 leave a smaller last micro-batch
        acc, loss = gradient_accumulation.accumulated_gradient(model, weights, data, target, micro)
        assert loss == pytest.approx(full_loss.item(), rel=1e-12)
        for a, b in zip(acc, full):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="micro_batch"):
        gradient_accumulation.accumulated_gradient(model, weights, data, target, 0)


def test_gradient_accumulation_training_loss_falls() -> None:
    losses = gradient_accumulation.main(steps=20, batch=32, micro_batch=8, width=32)
    assert len(losses) == 20 and losses[-1] < 0.7 * losses[0]


def test_data_parallel_matches_single_process_training(tmp_path) -> None:
    kwargs = dict(steps=5, batch=16, width=16, depth=3, lr=0.1, seed=0)
    losses = data_parallel.main(world_size=2, out_dir=tmp_path, **kwargs)
    rank0 = Vector.load(tmp_path / "rank0.pt")
    rank1 = Vector.load(tmp_path / "rank1.pt")
    for a, b in zip(rank0, rank1):
        assert torch.equal(a, b)  # the ranks stay in sync exactly
    ref_losses, ref_weights = data_parallel.train_single_process(**kwargs)
    assert losses == pytest.approx(ref_losses, rel=1e-5)
    assert losses[-1] < losses[0]
    for a, b in zip(rank0, ref_weights):
        torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-5)
    # the broadcast matters: rank 1 alone would have started from other weights
    _, own = data_parallel.make_model(16, 3, 1000)
    _, ref = data_parallel.make_model(16, 3, 0)
    assert not torch.equal(own[0], ref[0])
