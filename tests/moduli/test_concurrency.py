"""Concurrent runs and interruptions, with real processes: one writer per run directory (a second
process stops naming the holder, or waits), a lock left by a killed process is taken over,
SIGINT/SIGTERM stop a run or a sweep with its checkpoint kept and a line saying how to resume, and
a sweep survives the death of one worker. Every test checks that no metrics record is lost or
duplicated: the resumed or waited-for run's metrics equal those of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from moduli.cli import main
from moduli.config import load_config
from moduli.run_dir import RunDir
from moduli.run_lock import LOCK_NAME, RunLock, holder_of
from moduli.training import run_config

ROOT = Path(__file__).resolve().parents[2]
ADDING = str(ROOT / "configs" / "adding.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")
# long enough to be caught mid-run (about 3,000 steps of a 32-neuron model), short enough to rerun
LONG = [ADDING, TINY, "train.epochs=3", "train.steps_per_epoch=1000", "train.log_every=50"]
TRAIN_RECORDS = list(range(50, 3001, 50))  # the train records' steps of an uninterrupted LONG run
TIMING = {"wall_time_s", "steps_per_s", "batched_runs"}
TIMEOUT = 300  # generous: the machine may be loaded

pytestmark = pytest.mark.usefixtures("one_thread")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _moduli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "moduli.cli", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _primed(*args: str) -> subprocess.Popen:
    """``moduli *args`` in a process that has imported everything and starts on a line on stdin
    (so that it acts at a known moment, not after a start-up of unknown length)."""
    code = "import sys\nfrom moduli.cli import main\nsys.stdin.readline()\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def _until(predicate, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first (status {proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _run_path(out: Path) -> Path:
    cfg = load_config([ADDING, TINY], LONG[2:] + [f"out_dir={out}"])
    return RunDir.path_for(cfg)


def _has_checkpoint(run: Path) -> bool:
    return (run / "checkpoints" / "last.pt").exists()


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict]:
    """The metrics of an uninterrupted LONG run (trained in this process, one thread)."""
    out = tmp_path_factory.mktemp("reference")
    cfg = load_config([ADDING, TINY], LONG[2:] + [f"out_dir={out}"])
    run_config(cfg, quiet=True)
    records = _records(RunDir.path_for(cfg))
    assert [r["step"] for r in records if r["split"] == "train"] == TRAIN_RECORDS
    return records


# ------------------------------------------------------------------------------ one writer per run
def test_a_second_writer_exits_2_naming_the_holder_and_a_waiting_one_reads_the_result(tmp_path, reference):
    run = _run_path(tmp_path)
    second = _primed("train", *LONG, "--out-dir", str(tmp_path), "--quiet")
    waiting = _primed("train", *LONG, "--out-dir", str(tmp_path), "--wait")
    first = _moduli("train", *LONG, "--out-dir", str(tmp_path), "--quiet")
    _until(lambda: (run / "metrics.jsonl").exists(), first)
    first.send_signal(signal.SIGSTOP)  # paused, still holding the lock: the others meet it whatever the load
    try:
        _go(second)
        code, out, err = _finish(second)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"error: run directory {run} is in use by process {first.pid} on ")
        assert "moduli train" in err and "add --wait to wait for it" in err
        _go(waiting)
        said = [waiting.stderr.readline() for _ in range(2)]  # "run directory: ...", then the wait
    finally:
        first.send_signal(signal.SIGCONT)
    assert f"is in use by process {first.pid}" in said[1] and "waiting for it" in said[1], said
    assert _finish(first)[0] == 0
    code, out, err = _finish(waiting)
    assert code == 0, err
    assert json.loads(out)["steps"] == 3000  # read back: the first process trained it
    assert _records(run) == reference  # no record lost or written twice
    assert not (run / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, reference):
    run = _run_path(tmp_path)
    killed = _moduli("train", *LONG, "--out-dir", str(tmp_path), "--quiet")
    _until(lambda: _has_checkpoint(run), killed)
    killed.kill()
    _finish(killed)
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == killed.pid  # left behind ...
    assert holder_of(run) is None  # ... but no longer held
    code, out, err = _finish(_moduli("train", *LONG, "--out-dir", str(tmp_path)))
    assert code == 0, err
    assert f"taking over the lock left by process {killed.pid}" in err
    assert "resuming from step " in err
    assert _records(run) == reference
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


def test_lock_is_reentrant_in_one_process_and_exclusive_between_processes(tmp_path):
    with RunLock(tmp_path / "run") as lock, RunLock(tmp_path / "run"):
        assert lock.taken_over is None and holder_of(tmp_path / "run")["pid"] == os.getpid()
        probe = subprocess.run(
            [sys.executable, "-c", "import sys; from moduli.run_lock import RunLock; from moduli.errors import "
             "RunLockedError\ntry:\n    RunLock(sys.argv[1]).acquire()\nexcept RunLockedError as e:\n    print(e)",
             str(tmp_path / "run")], env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
        assert f"is in use by process {os.getpid()}" in probe.stdout, probe.stderr
    assert not (tmp_path / "run" / LOCK_NAME).exists() and holder_of(tmp_path / "run") is None


def test_a_sweep_cell_another_process_trains_fails_without_touching_its_directory(tmp_path, capsys):
    cells = ["--grid", "pruning.target=0.5,0.8", "--out-dir", str(tmp_path / "o"), "--quiet"]
    locked = RunDir.path_for(load_config([ADDING, TINY], ["pruning.target=0.8", f"out_dir={tmp_path / 'o'}"]))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from moduli.run_lock import RunLock; RunLock(sys.argv[1]).acquire(); "
         "print('held', flush=True); time.sleep(600)", str(locked)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        csv = tmp_path / "table.csv"
        assert main(["sweep", ADDING, TINY, *cells, "--csv", str(csv)]) == 1
        table = pd.read_csv(csv).set_index("pruning.target")
        assert table.loc[0.5, "status"] == "finished"
        assert table.loc[0.8, "status"] == "failed"
        assert table.loc[0.8, "error"].startswith(f"RunLockedError: run directory {locked} is in use by process {holder.pid}")
        assert sorted(p.name for p in locked.iterdir()) == [LOCK_NAME]  # no status, config or metrics written
    finally:
        holder.kill()
        holder.wait()
    capsys.readouterr()
    assert main(["sweep", ADDING, TINY, *cells]) == 0  # the holder is gone: the cell trains


# ------------------------------------------------------------------------------ interruptions
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_train_with_its_checkpoint_and_the_rerun_resumes(tmp_path, reference, sig, status):
    run = _run_path(tmp_path)
    proc = _moduli("train", *LONG, "--out-dir", str(tmp_path), "--quiet")
    _until(lambda: _has_checkpoint(run), proc)
    proc.send_signal(sig)
    code, out, err = _finish(proc)
    assert code == status and out == "" and "Traceback" not in err
    assert err.count("\n") == 1, err
    stored = json.loads((run / "status.json").read_text())
    assert stored["status"] == "interrupted" and stored["error"].startswith(f"{sig.name} at step ")
    kept = RunDir.open(run).load_checkpoint()["step"]
    assert err.startswith(f"interrupted by {sig.name}: {run} stopped at step ")
    assert f"its checkpoint of step {kept} is kept (status interrupted); resume with: moduli train " in err
    assert not (run / LOCK_NAME).exists()
    code, out, err = _finish(_moduli("train", *LONG, "--out-dir", str(tmp_path)))
    assert code == 0 and f"resuming from step {kept} " in err, err
    assert _records(run) == reference


SWEEP = [ADDING, TINY, "train.epochs=2", "train.steps_per_epoch=1000", "train.log_every=50",
         "--grid", "pruning.target=0.5,0.8,0.9", "--jobs", "2", "--quiet"]


def _workers(out: Path) -> dict[Path, int]:
    """Run directory -> pid of the worker training it (from the lock files)."""
    found = {}
    for lock in out.glob(f"*/{LOCK_NAME}"):
        try:
            found[lock.parent] = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _check_sweep_metrics(out: Path) -> None:
    for run in out.glob("adding-*"):
        steps = [r["step"] for r in _records(run) if r["split"] == "train"]
        assert steps == list(range(50, 2001, 50)), run  # nothing lost, nothing twice


def test_a_signal_stops_every_sweep_worker_within_2_s_and_leaves_no_cell_running(tmp_path, capsys):
    out = tmp_path / "o"
    sweep = _moduli("sweep", *SWEEP, "--out-dir", str(out))
    _until(lambda: len([r for r in _workers(out) if (r / "metrics.jsonl").exists()]) == 2, sweep)
    pids = list(_workers(out).values())
    sent = time.monotonic()
    sweep.send_signal(signal.SIGINT)
    _until(lambda: not any(_alive(pid) for pid in pids), timeout=30)
    stopped = time.monotonic() - sent
    code, stdout, err = _finish(sweep)
    with capsys.disabled():
        print(f"\nsweep workers stopped {stopped:.2f} s after SIGINT")
    assert stopped < 2.0  # the bound; the design's worst case is STOP_SECONDS = 1.5 s
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("interrupted by SIGINT: 2 runs stopped") and "resume with: moduli sweep " in err
    statuses = [json.loads((run / "status.json").read_text())["status"] for run in out.glob("adding-*")]
    assert sorted(statuses) == ["interrupted", "interrupted"]
    assert not list(out.glob(f"*/{LOCK_NAME}"))
    assert main(["sweep", *[a for a in SWEEP if a not in ("--jobs", "2")], "--out-dir", str(out)]) == 0
    _check_sweep_metrics(out)


def test_a_killed_sweep_worker_fails_only_its_cell_which_resumes_on_the_rerun(tmp_path, capsys):
    out, csv = tmp_path / "o", tmp_path / "table.csv"
    sweep = _moduli("sweep", *SWEEP, "--out-dir", str(out), "--csv", str(csv))
    _until(lambda: any(_has_checkpoint(run) for run in _workers(out)), sweep)
    victim, pid = next((run, pid) for run, pid in _workers(out).items() if _has_checkpoint(run))
    os.kill(pid, signal.SIGKILL)
    code, stdout, err = _finish(sweep)
    assert code == 1, err
    table = pd.read_csv(csv)
    lost = table[table["run_dir"] == str(victim)].iloc[0]
    assert lost["status"] == "failed"
    assert lost["error"] == ("WorkerDied: the worker process training this run died (killed by SIGKILL); run the "
                             "sweep again to resume the run from its last checkpoint")
    assert (table[table["run_dir"] != str(victim)]["status"] == "finished").all() and len(table) == 3
    assert json.loads((victim / "status.json").read_text())["status"] == "failed"
    kept = RunDir.open(victim).load_checkpoint()["step"]
    code, stdout, err = _finish(_moduli("sweep", *SWEEP, "--out-dir", str(out), "--csv", str(csv)))
    assert code == 0, err
    assert (pd.read_csv(csv)["status"] == "finished").all()
    assert kept > 0
    _check_sweep_metrics(out)


# ------------------------------------------------------------------------------ long runs
def test_a_paper_sized_run_on_this_device_announces_its_time_and_stops_on_sigterm(tmp_path):
    """configs/tiny.yaml listed first is overridden by the paper-sized navigation.yaml: the run
    says how long it would take here and how to make it tiny, before it trains."""
    proc = _moduli("train", TINY, str(ROOT / "configs" / "navigation.yaml"), "train.device=cpu", "--out-dir",
                   str(tmp_path))
    lines = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, f"ended before announcing itself: {lines}"
        lines.append(line)
        if "is estimated to take about" in line:
            break
    proc.send_signal(signal.SIGTERM)
    code, _, rest = _finish(proc)
    announcement = lines[-1]
    assert "list configs/tiny.yaml last (config files merge in order, later files win)" in announcement
    assert "model.hidden_size = 4096" in announcement
    assert " h on cpu" in announcement or " days on cpu" in announcement
    assert code == 143 and rest.startswith("interrupted by SIGTERM: "), rest
