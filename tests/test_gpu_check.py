"""The GPU check script: its CPU dry run goes through every part and writes the results file; the
timeouts, the missing-package message and the device check work."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("moduli_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dry_run_goes_through_every_part(gpu_check, tmp_path):
    path = gpu_check.main(["--dry-run", "--out-dir", str(tmp_path)])
    assert path == tmp_path / "dry-run-cpu.md"
    text = path.read_text()
    assert "Dry run on the CPU" in text
    statuses = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| \d+ \|$", text, flags=re.MULTILINE))
    expected = ["CUDA-marked tests", *(f"benchmark {g}" for g in gpu_check.BENCH_GROUPS), "P3 batched seeds",
                "navigation training, fp32", "navigation training, bf16", "paper preset GPU-hour estimate"]
    assert list(statuses) == expected
    assert set(statuses.values()) == {"ok"}, statuses
    # the CUDA-marked tests were selected (and skipped on the CPU), every benchmark group has rows
    assert re.search(r"`pytest -m cuda`: \d+ skipped", text)
    for group in gpu_check.BENCH_GROUPS:
        assert f"\n| {group} | " in text
    # both precisions trained and the estimate used their step times
    assert text.count("| 32 | 16 | 8 | 10 |") == 2
    assert "bf16 (ran fp32)" in text
    assert re.search(r"FLOP model: \d+\.\d GPU hours", text)
    assert re.search(r"measured fp32 step \([\d.]+ ms.*\): [\d.]+ GPU hours", text)
    assert re.search(r"measured bf16 step \([\d.]+ ms.*\): [\d.]+ GPU hours", text)


def test_a_part_past_its_budget_is_killed(gpu_check):
    out, code, seconds = gpu_check.run_process(
        [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], timeout=2.0)
    assert code is None and seconds < 30 and "started" in out
    assert gpu_check._status(code, 2.0) == "timed out after 2 s"
    out, code, _ = gpu_check.run_process([sys.executable, "-c", "raise SystemExit(3)"], timeout=30.0)
    assert gpu_check._status(code, 30.0) == "failed (exit 3)"


def test_missing_package_and_missing_device_stop_with_one_message(gpu_check, monkeypatch):
    monkeypatch.setitem(gpu_check.REQUIRED, "no_such_module_xyz", "no-such-dist")
    with pytest.raises(SystemExit, match=r"missing Python packages: no-such-dist\. Install them first: pip install -e"):
        gpu_check.check_environment(dry_run=True)
    monkeypatch.delitem(gpu_check.REQUIRED, "no_such_module_xyz")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="sees no CUDA device.*--dry-run"):
            gpu_check.check_environment(dry_run=False)


def test_results_file_name_and_budgets(gpu_check):
    assert gpu_check.file_name("NVIDIA H200") == "NVIDIA-H200.md"
    assert gpu_check.file_name("Tesla V100-SXM2-16GB") == "Tesla-V100-SXM2-16GB.md"
    def worst(b) -> float:  # every part at its full budget plus the two navigation runs
        return b.tests + sum(b.bench.values()) + b.p3 + 2 * (b.train + b.setup)

    b, d = gpu_check.Budgets(), gpu_check.Budgets.dry()
    assert worst(b) <= b.total - 10 and b.train == 120.0
    assert worst(d) <= d.total - 10  # the dry run's budgets fit their total too
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--budget", "0"])
