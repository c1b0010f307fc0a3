"""Crash safety: every file the toolkit writes goes through the atomic writers, and a sweep
killed with SIGKILL at random moments, then restarted, gives exactly the results of an
uninterrupted sweep without recomputing or double-counting any run."""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from moduli.cli import main

ROOT = Path(__file__).resolve().parents[2]
ADDING = str(ROOT / "configs" / "adding.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")
SWEEP_ARGS = [ADDING, TINY, "--grid", "pruning.target=0.5,0.8", "--seeds", "0,1", "--quiet"]
RUNS, LINES_PER_RUN = 4, 12  # tiny.yaml: 2 epochs x 5 steps, log_every=1 -> 10 train + 2 valid records
# How a run was executed, not what it computed: timings, and how many seeds were trained together
# (a sweep restarted after a kill may train a group one by one instead of batched).
TIMING_FIELDS = {"wall_time_s", "steps_per_s", "batched_runs"}
# Modules that are not part of the toolkit's run outputs (they write tables and figures of their own).
EXCLUDED_PACKAGES = ("reproduce", "figures")


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ static check
def _write_calls(path: Path) -> list[str]:
    """Calls in ``path`` that write a file in place (not through moduli.atomic)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
        if name in ("write_text", "write_bytes", "savefig", "to_parquet", "to_pickle"):
            found.append(where)
        elif name in ("save",) and owner in ("torch", "np", "numpy"):
            found.append(where)
        elif name in ("dump",) and owner in ("json", "yaml", "pickle"):
            found.append(where)
        elif name in ("to_csv", "to_json") and (node.args or any(k.arg == "path_or_buf" for k in node.keywords)):
            found.append(where)  # to_csv() without a path returns a string: that is fine
        elif name == "open" and owner in ("", "io", "builtins"):
            modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
            text = [m.value for m in modes if isinstance(m, ast.Constant) and isinstance(m.value, str)]
            if any(set(m) & set("wax+") for m in text):
                found.append(where)
    return found


def test_no_module_writes_files_in_place():
    """Only moduli/atomic.py opens files for writing; everything else calls its writers."""
    offenders = []
    for path in sorted((ROOT / "moduli").rglob("*.py")):
        parts = path.relative_to(ROOT / "moduli").parts
        if parts[0] in EXCLUDED_PACKAGES or path.name == "atomic.py":
            continue
        offenders.extend(_write_calls(path))
    assert offenders == [], f"in-place writes (use moduli.atomic): {offenders}"


def test_the_static_check_finds_in_place_writes(tmp_path, monkeypatch):
    """The checker above is not vacuous: it flags each forbidden form."""
    sample = ROOT / "moduli" / "_write_sample_for_test.py"
    code = (
        "import json, torch\nfrom pathlib import Path\n"
        "def f(df, obj, p):\n"
        "    Path(p).write_text('x')\n    torch.save(obj, p)\n    df.to_csv(p)\n"
        "    json.dump(obj, open(p, 'w'))\n    open(p, mode='ab')\n    df.to_csv(index=False)\n"
        "    open(p, 'rb')\n"
    )
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: code)
    names = [w.rsplit(" ", 1)[1] for w in _write_calls(sample)]
    assert sorted(names) == sorted(["write_text", "save", "to_csv", "dump", "open", "open"])


# ------------------------------------------------------------------------------ dynamic check
def test_every_output_file_is_renamed_into_place_or_appended(tmp_path, monkeypatch, capsys):
    """Train a run with a learned embedding (embedding snapshots) and a sweep with --csv; every
    file in the output is the target of an os.replace (an atomic write), except the append-only
    metrics.jsonl, and no temporary file is left."""
    replaced: set[Path] = set()
    original_replace = os.replace

    def spy_replace(src, dst, *args, **kwargs):
        replaced.add(Path(dst).resolve())
        return original_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy_replace)
    out = tmp_path / "out"
    learned = str(ROOT / "configs" / "regularizer" / "learned_r3.yaml")
    assert main(["train", ADDING, learned, TINY, "--out-dir", str(out), "--quiet"]) == 0
    csv = tmp_path / "table.csv"
    assert main(["sweep", ADDING, TINY, "--grid", "pruning.target=0.5", "--seeds", "0", "--out-dir", str(out),
                 "--csv", str(csv), "--quiet"]) == 0
    capsys.readouterr()
    files = [p.resolve() for p in out.rglob("*") if p.is_file()] + [csv.resolve()]
    names = {p.name for p in files}
    assert {"config.yaml", "environment.json", "metrics.jsonl", "last.pt", "status.json", "summary.json",
            "epoch_0000.pt", "table.csv"} <= names
    not_atomic = [p for p in files if p not in replaced and p.name != "metrics.jsonl"]
    assert not_atomic == []
    assert not [p for p in files if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------ SIGKILL sweeps
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _progress(out: Path) -> int:
    """Metrics records written so far over all runs (a finished run counts LINES_PER_RUN)."""
    total = 0
    for metrics in out.glob("*/metrics.jsonl"):
        try:
            total += metrics.read_bytes().count(b"\n")
        except OSError:
            pass
    return total


def _stage(out: Path) -> str:
    """Where the sweep stood when it was killed."""
    finished = len(list(out.glob("*/summary.json")))
    started = [d for d in out.glob("*-*") if not (d / "summary.json").exists() and _progress_of(d) > 0]
    if finished == 0:
        return "before any run finished" + (" (mid-run)" if started else "")
    if finished == RUNS:
        return "after every run finished"
    return "mid-run" if started else "between runs"


def _progress_of(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return metrics.read_bytes().count(b"\n") if metrics.exists() else 0


def _summaries(out: Path) -> dict[str, dict]:
    return {
        p.parent.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in TIMING_FIELDS}
        for p in out.glob("*/summary.json")
    }


def _table(csv: Path) -> pd.DataFrame:
    table = pd.read_csv(csv).drop(columns=sorted(TIMING_FIELDS & set(pd.read_csv(csv).columns)))
    table["run_dir"] = [Path(p).name for p in table["run_dir"]]
    return table


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _killed_sweep(tmp_path: Path, kills: int, seed: int) -> list[str]:
    """Kill the sweep ``kills`` times at seeded random points, run it to completion, compare."""
    reference, out = tmp_path / "reference", tmp_path / "killed"
    ref_csv, out_csv = tmp_path / "reference.csv", tmp_path / "killed.csv"
    rng = random.Random(seed)
    # kill when the sweep has written `target` metrics records (+ a random delay of up to 30 ms),
    # or at a random moment of the start-up (target 0)
    targets = sorted(rng.sample(range(0, RUNS * LINES_PER_RUN - 1), kills))
    command = [sys.executable, "-m", "moduli.cli", "sweep", *SWEEP_ARGS, "--out-dir", str(out), "--csv", str(out_csv)]
    stages: list[str] = []
    summary_mtimes: dict[Path, int] = {}  # runs finished before a kill -> summary.json mtime
    for target in targets:
        proc = subprocess.Popen(command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if target == 0:
                time.sleep(rng.uniform(0.2, 1.5))
            else:
                while proc.poll() is None and _progress(out) < target:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.03))
            alive = proc.poll() is None
            if alive:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stderr.close()
        if not alive:
            break  # it finished before this kill point
        assert proc.returncode == -signal.SIGKILL
        stages.append(_stage(out))
        for summary in out.glob("*/summary.json"):
            summary_mtimes.setdefault(summary, summary.stat().st_mtime_ns)

    # the uninterrupted reference, in this process (same code, same single thread)
    assert main(["sweep", *SWEEP_ARGS, "--out-dir", str(reference), "--csv", str(ref_csv)]) == 0
    final = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr

    table, ref_table = _table(out_csv), _table(ref_csv)
    pd.testing.assert_frame_equal(table, ref_table)
    assert len(table) == RUNS and table["run_dir"].nunique() == RUNS and (table["status"] == "finished").all()
    assert _summaries(out) == _summaries(reference) and len(_summaries(out)) == RUNS
    for summary, mtime in summary_mtimes.items():  # no run finished before a kill was recomputed
        assert summary.stat().st_mtime_ns == mtime, summary
    for run in out.glob("*-*"):
        records = _metrics(run)
        for split in ("train", "valid"):
            steps = [r["step"] for r in records if r["split"] == split]
            assert all(a < b for a, b in zip(steps, steps[1:])), (run, split, steps)
        assert [r["step"] for r in records if r["split"] == "train"] == list(range(1, 11))
        strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]  # noqa: E731
        assert strip(records) == strip(_metrics(reference / run.name))
    return stages


def test_sweep_killed_at_five_random_points_equals_an_uninterrupted_sweep(tmp_path, capsys):
    stages = _killed_sweep(tmp_path, kills=5, seed=0)
    capsys.readouterr()
    with capsys.disabled():
        print(f"\nkill points exercised: {len(stages)}: {stages}")
    assert len(stages) >= 5
    assert any("before any run finished" in s for s in stages)
    assert any(s in ("mid-run", "between runs") for s in stages)


@pytest.mark.slow
def test_sweep_killed_at_many_random_points_equals_an_uninterrupted_sweep(tmp_path, capsys):
    stages = _killed_sweep(tmp_path, kills=15, seed=1)
    with capsys.disabled():
        print(f"\nkill points exercised: {len(stages)}: {stages}")
    assert len(stages) >= 12
