"""What a run shows while it trains: a progress bar on a terminal, plain lines in a log.

On a terminal :class:`Progress` is a tqdm bar. Without one (output to a file, a batch job) it
prints one line ``<task>: step S/T (epoch E/N), loss ..., R steps/s, about H left`` whenever
:data:`PROGRESS_INTERVAL_S` has passed since the last, so a log shows the run is alive.
:func:`announce_long_run` prints the estimated time of a run on this device before it trains,
when that exceeds :data:`LONG_RUN_S`, with how to make it small.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config.schema import RunConfig

__all__ = ["LONG_RUN_S", "PROGRESS_INTERVAL_S", "Progress", "announce_long_run", "estimated_seconds", "format_duration"]

PROGRESS_INTERVAL_S = 60.0  # at most this long between two progress lines without a terminal
LONG_RUN_S = 600.0  # runs estimated to take longer are announced before they train


def format_duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h`` or ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class Progress:
    """A tqdm bar on a terminal, else a plain line at least every :data:`PROGRESS_INTERVAL_S`."""

    def __init__(self, total: int, initial: int, desc: str, quiet: bool, epochs: int, steps_per_epoch: int) -> None:
        tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, disable=not (tty and not quiet), dynamic_ncols=True, desc=desc)
        self.lines = not quiet and not tty
        self.total, self.done, self.start = total, initial, initial
        self.desc, self.epochs, self.steps_per_epoch = desc, epochs, steps_per_epoch
        self.postfix: dict[str, Any] = {}
        self.started = self.last = time.monotonic()

    def set_postfix(self, values: dict[str, Any]) -> None:
        """Latest values shown after the counts (loss, metric, sparsity)."""
        self.postfix.update(values)
        self.bar.set_postfix(self.postfix)

    def update(self, n: int = 1) -> None:
        """``n`` more steps done."""
        self.done += n
        self.bar.update(n)
        self.tick()

    def tick(self) -> None:
        """Print a progress line if one is due (no terminal)."""
        now = time.monotonic()
        if not self.lines or now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        rate = (self.done - self.start) / max(now - self.started, 1e-9)
        epoch = min(self.done // max(self.steps_per_epoch, 1) + 1, self.epochs)
        parts = [f"{self.desc}: step {self.done}/{self.total} (epoch {epoch}/{self.epochs})"]
        parts += [f"{key} {value}" for key, value in self.postfix.items()]
        parts.append(f"{rate:.3g} steps/s")
        if rate > 0:
            parts.append(f"about {format_duration((self.total - self.done) / rate)} left")
        print(", ".join(parts), file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def _matmul_flops_per_second(device: torch.device, n: int) -> float:
    """Measured FLOP/s of a (256, n) x (n, n) product on ``device`` (n at most 1024)."""
    n = max(16, min(n, 1024))
    a = torch.full((256, n), 0.5, device=device)  # no random numbers: the run's RNG streams stay untouched
    b = torch.full((n, n), 0.5, device=device)
    reps = 3
    for _ in range(2):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2.0 * 256 * n * n * reps / max(time.perf_counter() - started, 1e-9)


def estimated_seconds(cfg: RunConfig, device: torch.device) -> tuple[float, float]:
    """(seconds of the whole run, seconds of one training step) of ``cfg`` on ``device``: the
    FLOP model of :mod:`moduli.reproduce.estimate` at the matrix-product speed measured here."""
    from ..reproduce.estimate import run_seconds, train_step_flops

    step = train_step_flops(cfg) / _matmul_flops_per_second(device, cfg.model.hidden_size)
    return run_seconds(cfg, step_seconds=step), step


def announce_long_run(cfg: RunConfig, device: torch.device, steps_left: int, steps_total: int) -> float | None:
    """Print the estimated time of ``cfg``'s run on ``device`` if it exceeds :data:`LONG_RUN_S`;
    returns the estimate of what is left (seconds), or None when nothing was printed."""
    total, step = estimated_seconds(cfg, device)
    left = total * steps_left / max(steps_total, 1)
    if left <= LONG_RUN_S:
        return None
    train = cfg.train
    print(
        f"this run is estimated to take about {format_duration(left)} on {device} ({steps_left} of {steps_total} "
        f"steps left, about {step:.3g} s per step: model.hidden_size = {cfg.model.hidden_size}, train.epochs = "
        f"{train.epochs}, train.steps_per_epoch = {train.steps_per_epoch}, train.batch_size = {train.batch_size}); "
        "for a quick run list configs/tiny.yaml last (config files merge in order, later files win), or lower "
        "train.epochs, train.steps_per_epoch or model.hidden_size",
        file=sys.stderr, flush=True,
    )
    return left


class RunsProgress:
    """Overall progress of the runs of a sweep or table: one bar (or one line per finished run
    without a terminal) with the time left, estimated from the runs' relative costs."""

    def __init__(self, costs: dict[Any, float], total_runs: int, quiet: bool) -> None:
        self.costs, self.total_runs, self.quiet = costs, total_runs, quiet
        self.total_cost = sum(costs.values()) or 1.0
        self.done_cost, self.count = 0.0, 0
        self.started = time.monotonic()
        tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=self.total_cost, disable=not (tty and not quiet) or not costs, dynamic_ncols=True,
            desc=f"runs 0/{total_runs}", bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )
        self.lines = not quiet and (not tty or not costs)

    def done(self, key: Any, text: str) -> None:
        """A run ended (``key`` None or absent from the costs: it was read back, not trained)."""
        self.count += 1
        cost = self.costs.get(key, 0.0)
        self.done_cost += cost
        self.bar.set_description_str(f"runs {self.count}/{self.total_runs}", refresh=False)
        self.bar.update(cost)
        if not self.lines:
            if not self.quiet and self.bar.disable is False:
                self.bar.write(f"[{self.count}/{self.total_runs}] {text}", file=sys.stderr)
            return
        elapsed = time.monotonic() - self.started
        timing = ""
        if cost > 0:
            left = elapsed * (self.total_cost - self.done_cost) / max(self.done_cost, 1e-12)
            timing = f"; {format_duration(elapsed)} elapsed, about {format_duration(left)} left"
        print(f"[{self.count}/{self.total_runs}] {text}{timing}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
