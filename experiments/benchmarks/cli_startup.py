"""Start-up time of the ``moduli`` command line, against a bare interpreter start in the same process.

    python experiments/benchmarks/cli_startup.py [--rounds 7]

Each command runs as a fresh process (``sys.executable -m moduli.cli ...``), interleaved with the
baseline ``python -c pass`` and with ``python -c "import torch"`` for scale; the table gives the
median wall time over the rounds and its ratio to the baseline. Target: ``moduli --help`` and usage
errors within 1 second.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, list[str]] = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "python -c 'import torch' (scale)": [sys.executable, "-c", "import torch"],
    "moduli --help": [sys.executable, "-m", "moduli.cli", "--help"],
    "moduli train (usage error)": [sys.executable, "-m", "moduli.cli", "train"],
    "moduli train navigation foo=1 (config error)": [sys.executable, "-m", "moduli.cli", "train", "navigation", "foo=1"],
    "moduli reproduce adding --preset smoke --dry-run": [
        sys.executable, "-m", "moduli.cli", "reproduce", "adding", "--preset", "smoke", "--dry-run", "--quiet",
    ],
}


def wall_time(cmd: list[str]) -> float:
    """Seconds from start to exit of ``cmd`` (output discarded)."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, float]:
    """Median wall time of every command over ``rounds`` interleaved rounds (one warm-up round first)."""
    for cmd in COMMANDS.values():
        wall_time(cmd)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):
        for name, cmd in COMMANDS.items():
            times[name].append(wall_time(cmd))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    args = parser.parse_args(argv)
    medians = measure(args.rounds)
    base = medians["python -c pass (baseline)"]
    print("| command | median wall time (s) | ratio to bare python |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {seconds / base:.1f}x |")


if __name__ == "__main__":
    main()
