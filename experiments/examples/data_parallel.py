"""Data-parallel training with ``torch.distributed`` (gloo, CPU processes).

Run: ``python experiments/examples/data_parallel.py``. Every process starts from rank 0's weights
(``Vector.broadcast``), computes the gradient of its shard of the batch, and averages gradients
with ``Vector.all_reduce``; all processes then take the same normalised step, so they stay in sync
and reproduce single-process training on the full batch.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

try:
    import modula_core  # noqa: F401
except ImportError:  # run as a script from a checkout: put the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modula_core import Module, Vector
from modula_core.compound import MLP

INPUT_DIM, OUTPUT_DIM = 16, 4


def make_model(width: int, depth: int, seed: int) -> tuple[Module, Vector]:
    """The MLP (16 -> 4) and initial weights drawn from ``seed``."""
    model = MLP(output_dim=OUTPUT_DIM, input_dim=INPUT_DIM, width=width, depth=depth)
    return model, model.initialize(generator=torch.Generator().manual_seed(seed))


def make_data(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random regression batch: data (B, 16), target (B, 4)."""
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randn(batch, INPUT_DIM, generator=gen), torch.randn(batch, OUTPUT_DIM, generator=gen)


def _step(model: Module, weights: Vector, grad: Vector, lr: float) -> None:
    with torch.no_grad():
        model.normalize(grad)
        weights -= lr * grad
        weights.zero_grad()


def train_single_process(steps: int = 10, batch: int = 32, width: int = 32, depth: int = 3, lr: float = 0.1, seed: int = 0) -> tuple[list[float], Vector]:
    """Reference: the same training on the full batch in one process. Returns (losses, final weights)."""
    model, weights = make_model(width, depth, seed)
    data, target = make_data(batch, seed)
    losses = []
    for _ in range(steps):
        loss = (model(data, weights) - target).square().mean()
        loss.backward()
        _step(model, weights, weights.grad(), lr)
        losses.append(loss.item())
    return losses, weights


def _worker(rank: int, world_size: int, port: int, steps: int, batch: int, width: int, depth: int, lr: float, seed: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        # Ranks draw different initial weights on purpose: the broadcast makes them rank 0's.
        model, weights = make_model(width, depth, seed + 1000 * rank)
        data, target = make_data(batch, seed)
        weights.broadcast(src=0)
        shard = slice(rank * batch // world_size, (rank + 1) * batch // world_size)
        losses = []
        for _ in range(steps):
            loss = (model(data[shard], weights) - target[shard]).square().mean()
            loss.backward()
            grad = weights.grad().all_reduce(average=True)  # equal shards: mean of means = full mean
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            losses.append(mean_loss.item() / world_size)
            _step(model, weights, grad, lr)
        weights.save(Path(out_dir) / f"rank{rank}.pt")
        if rank == 0:
            (Path(out_dir) / "losses.json").write_text(json.dumps(losses))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(
    steps: int = 10,
    world_size: int = 2,
    batch: int = 32,
    width: int = 32,
    depth: int = 3,
    lr: float = 0.1,
    seed: int = 0,
    out_dir: str | Path | None = None,
    verbose: bool = False,
) -> list[float]:
    """Train on ``world_size`` CPU processes; returns the full-batch loss at every step.

    Each rank saves its final weights to ``out_dir/rank{r}.pt`` (a temporary folder if None).
    """
    if world_size < 1 or batch % world_size:
        raise ValueError(f"batch ({batch}) must be a positive multiple of world_size ({world_size}) so shards are equal")
    with tempfile.TemporaryDirectory() as tmp:
        target_dir = Path(out_dir) if out_dir is not None else Path(tmp)
        target_dir.mkdir(parents=True, exist_ok=True)
        args = (world_size, free_port(), steps, batch, width, depth, lr, seed, str(target_dir))
        mp.spawn(_worker, args=args, nprocs=world_size, join=True)
        losses = json.loads((target_dir / "losses.json").read_text())
    if verbose:
        for step, loss in enumerate(losses):
            print(step, loss)
    return losses


if __name__ == "__main__":
    main(verbose=True)
