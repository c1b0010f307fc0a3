"""K seeds trained as one batched model against the same K seeds trained one after the other.

Both sides run complete trainings into run directories (``train_batched`` vs K calls of
``run_config``, in this process, after a warm-up), at adding-problem sizes: N hidden ReLU
neurons, sequences of 50 steps, batches of 32, Adam with gradient clipping 0.5, the torus DoG
penalty and global magnitude pruning ramped to 95% (configs/adding.yaml), one small evaluation
(200 sequences) per epoch. Prints the median wall time of each side over the repetitions and
their ratio (sequential / batched; > 1 means batching is faster).

    python experiments/benchmarks/batched_seeds.py --hidden 256 --k 8
    python experiments/benchmarks/batched_seeds.py --quick
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from moduli.config import RunConfig, load_config
from moduli.training import run_config
from moduli.training.batched import train_batched

ROOT = Path(__file__).resolve().parents[2]


def _configs(out: Path, k: int, hidden: int, epochs: int, steps: int, device: str) -> list[RunConfig]:
    overrides = [
        f"out_dir={out}", f"model.hidden_size={hidden}", f"train.epochs={epochs}", f"train.steps_per_epoch={steps}",
        "train.log_every=100", "adding.eval_batches=1", "adding.eval_batch_size=200", f"train.device={device}",
    ]
    return [load_config([ROOT / "configs" / "adding.yaml"], overrides + [f"train.seed={seed}"]) for seed in range(k)]


def _time_both(out: Path, k: int, hidden: int, epochs: int, steps: int, device: str) -> tuple[float, float]:
    """(sequential seconds, batched seconds) of one repetition, each in a fresh directory."""
    started = time.perf_counter()
    for cfg in _configs(out / "sequential", k, hidden, epochs, steps, device):
        run_config(cfg, quiet=True)
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    outcomes = train_batched(_configs(out / "batched", k, hidden, epochs, steps, device), quiet=True)
    batched = time.perf_counter() - started
    failed = [o for o in outcomes if isinstance(o, Exception)]
    if failed:
        raise RuntimeError(f"a batched run failed: {failed[0]}")
    return sequential, batched


def measure(quick: bool, hidden: int = 256, k: int = 8, device: str = "cpu", repeats: int | None = None) -> dict[str, Any]:
    """Median wall times of K sequential runs and of the same K runs batched, and their ratio.

    ``quick``: 1 epoch of 5 steps, one repetition (a smoke run); otherwise 2 epochs of 20 steps,
    ``repeats`` (default 3) repetitions. Returns ``ratio`` (sequential / batched), ``size`` (N),
    ``device``, ``k`` and the details (seconds, steps, threads).
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be a positive int, got {hidden!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (runs batched together), got {k!r}")
    epochs, steps = (1, 5) if quick else (2, 20)
    repeats = (1 if quick else 3) if repeats is None else repeats
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _time_both(root / "warmup", 2, hidden, 1, 2, device)
        times = [_time_both(root / f"rep{r}", k, hidden, epochs, steps, device) for r in range(repeats)]
    sequential = statistics.median(t[0] for t in times)
    batched = statistics.median(t[1] for t in times)
    return {
        "ratio": sequential / batched, "size": hidden, "device": device, "k": k,
        "sequential_s": sequential, "batched_s": batched, "task": "adding", "seq_len": 50, "batch_size": 32,
        "steps": epochs * steps, "repeats": repeats, "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch of 5 steps, one repetition")
    parser.add_argument("--hidden", type=int, default=256, help="N, hidden neurons")
    parser.add_argument("--k", type=int, default=8, help="seeds trained together")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = measure(args.quick, args.hidden, args.k, args.device, args.repeats)
    print(
        f"{result['k']} seeds, adding N={result['size']} (T=50, B=32, {result['steps']} steps) on {result['device']}, "
        f"{result['threads']} thread(s): sequential {result['sequential_s']:.2f} s, batched {result['batched_s']:.2f} s, "
        f"ratio {result['ratio']:.2f}x"
    )


if __name__ == "__main__":
    main()
