"""The benchmark command: --quick produces every row with finite ratios and writes the Markdown table."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("moduli_benchmarks_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_judge_and_recorded_wall_time(bench, tmp_path, monkeypatch):
    assert bench.judge(1.02, "<= 1.05x") == "yes"
    assert bench.judge(1.06, "<= 1.05x") == "no"
    assert bench.judge(12.0, ">= 10x") == "yes"
    assert bench.judge(None, ">= 10x") == "-"
    assert bench.judge(2.0, "report") == "-"
    assert bench.recorded_wall_time(tmp_path / "missing") is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"timing": {"wall_time_s": 123.5}}))
    monkeypatch.setattr(bench, "ROOT", tmp_path)  # the note names the file relative to the root
    assert bench.recorded_wall_time(tmp_path) == (123.5, "run/summary.json")


def test_paired_ratio_of_known_sleeps(bench):
    import time

    import torch

    ratio, tb, tv = bench.paired_ratio(lambda: time.sleep(0.002), lambda: time.sleep(0.006),
                                       torch.device("cpu"), rounds=3, warmup=0)
    assert 1.5 < ratio < 6.0 and tv > tb


def test_quick_table_has_every_row(bench, tmp_path):
    out = tmp_path / "table.md"
    rows = bench.main(["--quick", "--out", str(out), "--rounds", "1"])
    ids = [r.id for r in rows]
    for group in bench.GROUPS:
        assert group in ids, f"no {group} row"
    measured = [r for r in rows if r.ratio is not None]
    assert all(math.isfinite(r.ratio) and r.ratio >= 0 for r in measured)
    timed = {r.id for r in measured}
    assert {"P1", "P2", "P4", "P5"} <= timed
    # P4: 3 sparsities x 2 batch sizes x (moduli BSR, moduli CSR, random CSR)
    assert sum(1 for r in measured if r.id == "P4") == 18
    # P5: 2 widths x 2 modules x (normalize, dualize)
    assert sum(1 for r in measured if r.id == "P5") == 8
    text = out.read_text()
    assert text.count("\n| P") == len(rows)
    assert "Device: cpu" in text and "--quick" in text
    for r in rows:
        assert r.met in ("yes", "no", "-")


def test_bad_arguments_exit(bench):
    with pytest.raises(SystemExit):
        bench.main(["--only", "P9"])
    with pytest.raises(SystemExit):
        bench.main(["--threads", "0"])
