"""The GPU check: everything the project measures on one CUDA device, in at most 8 minutes.

    python experiments/gpu_check.py              # on a machine with a CUDA device
    python experiments/gpu_check.py --dry-run    # on a CPU: every step at tiny sizes, seconds of budget

Parts, each a subprocess killed at its time budget (seconds; a part cut short is reported as such
and the others still run), so that the whole stays under ``--budget`` (480 s) on a slow GPU too:

1. tests      ``pytest -m cuda`` (the CUDA-marked tests), 40 s
2. P1 P2 P4 P5 the GPU rows of ``experiments/benchmarks/run.py --device cuda`` (3 paired rounds),
              30, 35, 25 and 25 s
3. P3         8 seeds batched vs one after another (``batched_seeds.measure``, one repetition), 35 s
4. navigation ``configs/navigation.yaml`` at the paper's size (hidden 4096, 512 place cells, batch
              200, T = 50), the project's training step for 120 s in fp32, then 120 s in bf16
              autocast (+ 15 s of set-up each): steps per second
5. estimate   the paper preset's GPU hours (``moduli reproduce navigation --preset paper``),
              from the FLOP model and from the measured fp32 and bf16 step times

Results: ``experiments/results/gpu/<device name>.md`` (``--out-dir`` to change the folder).
``--dry-run`` runs the same parts on the CPU at tiny sizes (the CUDA-marked tests of one file, the
benchmarks' quick sizes, 1 s of training) with budgets of seconds, validates the paper-size GPU
configs without running them, and writes to a temporary folder; a test of the default suite runs
it, so that GPU minutes are not spent discovering a typo.

Install first, on the GPU machine (its torch with CUDA stays: any torch 2.x meets ``torch>=2.2,<3``)::

    pip install -e '.[dev]'
    # offline: carry wheels of what is missing (a stock CUDA image lacks geoopt, omegaconf and its
    # antlr4-python3-runtime) and: pip install --no-index --no-deps <wheels>

The script checks every import first and stops with the list of what is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's moduli, installed or not
RUN_PY = ROOT / "experiments" / "benchmarks" / "run.py"
BATCHED_SEEDS = ROOT / "experiments" / "benchmarks" / "batched_seeds.py"
RESULTS = ROOT / "experiments" / "results" / "gpu"
BENCH_GROUPS = ("P1", "P2", "P4", "P5")
PRECISIONS = ("fp32", "bf16")

# module to import -> distribution to install (pyproject's dependencies and the dev extra)
REQUIRED = {
    "torch": "torch", "geoopt": "geoopt", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
    "omegaconf": "omegaconf", "yaml": "pyyaml", "tqdm": "tqdm", "matplotlib": "matplotlib",
    "seaborn": "seaborn", "sklearn": "scikit-learn", "pytest": "pytest", "hypothesis": "hypothesis",
}


@dataclass
class Budgets:
    """Seconds per part (each enforced by a timeout) and the training window of the navigation runs."""

    tests: float = 40.0
    bench: dict[str, float] = field(default_factory=lambda: {"P1": 30.0, "P2": 35.0, "P4": 25.0, "P5": 25.0})
    p3: float = 35.0
    train: float = 120.0  # measured training window, per precision
    setup: float = 15.0  # navigation process start, model and data, warm-up steps
    total: float = 480.0

    @classmethod
    def dry(cls) -> "Budgets":
        # generous: a dry run checks that every part works, on CPUs that may be shared and slow
        return cls(tests=150.0, bench={g: 150.0 for g in BENCH_GROUPS}, p3=150.0, train=0.5, setup=150.0, total=1400.0)


@dataclass
class Part:
    """What one part reports."""

    name: str
    status: str = "not run"  # ok | failed | timed out after N s | skipped: ... | error: ...
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""


# ----------------------------------------------------------------------------- checks
def missing_modules() -> list[str]:
    """Distributions whose module cannot be found (nothing is imported)."""
    return [dist for module, dist in REQUIRED.items() if importlib.util.find_spec(module) is None]


def check_environment(dry_run: bool) -> str:
    """Stop with one message if a dependency or (outside a dry run) the CUDA device is missing;
    returns the device's name."""
    missing = missing_modules()
    if missing:
        raise SystemExit(
            f"gpu_check: missing Python packages: {', '.join(missing)}. Install them first: "
            "pip install -e '.[dev]' (keeps the installed torch), or offline "
            "pip install --no-index --no-deps <their wheels>"
        )
    import torch

    if dry_run:
        return "dry-run-cpu"
    if not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_check: torch {torch.__version__} sees no CUDA device; run on the GPU machine, "
            "or use --dry-run to check the script on a CPU"
        )
    return torch.cuda.get_device_name(0)


def file_name(device_name: str) -> str:
    """``NVIDIA H200`` -> ``NVIDIA-H200.md``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", device_name).strip("-") + ".md"


# ----------------------------------------------------------------------------- subprocesses
def run_process(argv: list[str], timeout: float) -> tuple[str, int | None, float]:
    """Run ``argv`` from the repository root, killing its process group after ``timeout`` s.

    Returns (stdout and stderr, exit code or None when killed, seconds).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1.0))
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    return out or "", code, time.perf_counter() - started


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _status(code: int | None, budget: float) -> str:
    if code is None:
        return f"timed out after {budget:.0f} s"
    return "ok" if code == 0 else f"failed (exit {code})"


# ----------------------------------------------------------------------------- parts
def part_tests(budget: float, dry_run: bool) -> Part:
    where = "tests/moduli/test_fused_penalty.py" if dry_run else "tests"  # a dry run collects one file
    argv = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-o", "addopts=", "-p", "no:cacheprovider", where]
    out, code, seconds = run_process(argv, budget)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", out)}
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.MULTILINE)
    # pytest exits 5 when it selects no test; every other non-zero code is a failure
    status = _status(code, budget) if code != 5 else "failed (no CUDA-marked test selected)"
    return Part("CUDA-marked tests", status, seconds, {"counts": counts, "failed": failed}, _tail(out))


def part_benchmark(group: str, device: str, dry_run: bool, budget: float, work: Path) -> Part:
    table = work / f"{group}.md"
    argv = [sys.executable, str(RUN_PY), "--device", device, "--only", group, "--out", str(table)]
    argv += ["--quick", "--rounds", "1"] if dry_run else ["--rounds", "3"]
    out, code, seconds = run_process(argv, budget)
    rows = [line for line in table.read_text().splitlines() if line.startswith(f"| {group} ")] if table.exists() else []
    if not rows:  # cut short: the rows printed so far (their text is truncated at 60 characters)
        rows = [line.strip() for line in out.splitlines() if line.startswith(f"  {group} ")]
    return Part(f"benchmark {group}", _status(code, budget), seconds, {"rows": rows, "complete": table.exists()}, _tail(out))


def _json_part(name: str, argv: list[str], budget: float, result: Path) -> Part:
    out, code, seconds = run_process(argv, budget)
    data = json.loads(result.read_text()) if result.exists() else {}
    return Part(name, _status(code, budget), seconds, data, _tail(out))


def part_batched_seeds(device: str, dry_run: bool, budget: float, work: Path) -> Part:
    result = work / "p3.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--inner", "p3", "--device", device, "--json", str(result)]
    return _json_part("P3 batched seeds", argv + (["--dry-run"] if dry_run else []), budget, result)


def part_navigation(device: str, dry_run: bool, seconds: float, budget: float, work: Path) -> list[Part]:
    """fp32, then bf16, in one process (one import of torch); each result is written as it ends."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--inner", "navigation", "--device", device,
            "--train-seconds", str(seconds), "--work", str(work)]
    out, code, elapsed = run_process(argv + (["--dry-run"] if dry_run else []), budget)
    parts = []
    for precision in PRECISIONS:
        result = work / f"navigation_{precision}.json"
        if result.exists():
            data = json.loads(result.read_text())
            parts.append(Part(f"navigation training, {precision}", "ok", data.pop("process_seconds"), data))
        else:
            parts.append(Part(f"navigation training, {precision}", _status(code, budget) if code != 0 else "no result",
                              elapsed - sum(q.seconds for q in parts), {}, _tail(out)))
    return parts


def navigation_overrides(precision: str, device: str, out_dir: Path, dry_run: bool) -> list[str]:
    """The paper-size navigation run (configs/navigation.yaml as it is) on ``device``; tiny in a dry run."""
    overrides = [f"out_dir={out_dir}", f"train.device={device}", f"train.precision={precision}"]
    if dry_run:
        overrides += ["model.hidden_size=32", "navigation.num_place_cells=16", "train.batch_size=8",
                      "navigation.seq_len=10", "train.precision=fp32"]  # bf16 autocast needs CUDA
    return overrides


def inner_navigation(args: argparse.Namespace) -> None:
    """Train for ``args.train_seconds`` in each precision with the project's training step; writes
    ``navigation_<precision>.json`` (steps per second, ...) into ``args.work`` as each one ends."""
    import torch

    from moduli.config import load_config
    from moduli.run_dir import RunDir
    from moduli.training.loop import Trainer

    config = ROOT / "configs" / "navigation.yaml"
    device = torch.device(args.device)
    started = time.perf_counter()
    for precision in PRECISIONS:
        if args.dry_run:  # the GPU run's config must load as it is: a typo there would waste the GPU
            load_config([config], navigation_overrides(precision, "cuda", Path(args.work), False), check_hardware=False)
        cfg = load_config([config], navigation_overrides(precision, args.device, Path(args.work), args.dry_run))
        torch.manual_seed(0)
        trainer = Trainer(cfg, RunDir(RunDir.path_for(cfg), cfg), quiet=True)
        for _ in range(3):  # warm-up: kernels chosen, memory pools filled
            first_loss, _ = trainer.train_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        steps, window = 0, time.perf_counter()
        while time.perf_counter() - window < args.train_seconds:
            loss, penalty = trainer.train_step()  # returns floats: the step has finished on the device
            steps += 1
        elapsed = time.perf_counter() - window
        result = {
            "precision": cfg.train.precision, "asked_precision": precision, "steps": steps, "seconds": elapsed,
            "steps_per_second": steps / elapsed, "ms_per_step": 1e3 * elapsed / steps,
            "hidden": cfg.model.hidden_size, "place_cells": cfg.navigation.num_place_cells,
            "batch": cfg.train.batch_size, "seq_len": cfg.navigation.seq_len, "regularizer": cfg.regularizer.kind,
            "loss_after_warmup": first_loss, "loss_last": loss, "penalty_last": penalty,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "process_seconds": time.perf_counter() - started,
        }
        (Path(args.work) / f"navigation_{precision}.json").write_text(json.dumps(result, indent=1))
        del trainer
        started = time.perf_counter()


def inner_p3(args: argparse.Namespace) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("moduli_bench_batched_seeds", BATCHED_SEEDS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if args.dry_run:
        return module.measure(True, hidden=16, k=2, device=args.device, repeats=1)
    return module.measure(False, hidden=256, k=8, device=args.device, repeats=1)


def part_estimate(navigation: dict[str, Part]) -> Part:
    """The paper preset's GPU hours from the FLOP model and from the measured step times."""
    started = time.perf_counter()
    try:
        from moduli.reproduce.cells import build_cells
        from moduli.reproduce.estimate import assumptions_text, estimate_gpu_hours
        from moduli.reproduce.presets import load_preset
        from moduli.reproduce.tables import table_spec

        with tempfile.TemporaryDirectory() as runs:
            _, cells = build_cells(table_spec("navigation"), load_preset("navigation", "paper"), runs, check_hardware=False)
        configs = list({c.run_dir: c.config for c in cells}.values())
        data: dict[str, Any] = {"runs": len(configs), "model_hours": estimate_gpu_hours(configs),
                                "assumptions": assumptions_text()}
        for precision, part in navigation.items():
            if part.data.get("ms_per_step"):
                step = part.data["ms_per_step"] / 1e3
                data[f"{precision}_ms_per_step"] = part.data["ms_per_step"]
                data[f"{precision}_hours"] = estimate_gpu_hours(configs, step_seconds=step)
        status = "ok"
    except Exception as err:  # reported in the results file; the other parts' results stay
        data, status = {}, f"error: {type(err).__name__}: {err}"
    return Part("paper preset GPU-hour estimate", status, time.perf_counter() - started, data)


# ----------------------------------------------------------------------------- report
def report(device_name: str, dry_run: bool, parts: list[Part], budgets: Budgets, total: float) -> str:
    import torch

    lines = [f"# GPU check: {device_name}", ""]
    if dry_run:
        lines += ["**Dry run on the CPU at tiny sizes: no number below is a GPU measurement.**", ""]
    lines += [
        f"Command: `python experiments/gpu_check.py{' --dry-run' if dry_run else ''}`  ",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"total {total:.0f} s (budget {budgets.total:.0f} s)", "",
        "| part | status | seconds |", "|---|---|---|",
    ]
    lines += [f"| {p.name} | {p.status} | {p.seconds:.0f} |" for p in parts]
    by_name = {p.name: p for p in parts}
    tests = by_name.get("CUDA-marked tests")
    if tests is not None:
        counts = ", ".join(f"{v} {k}" for k, v in tests.data.get("counts", {}).items()) or "no summary"
        lines += ["", "## CUDA-marked tests", "", f"`pytest -m cuda`: {counts}."]
        lines += [f"- failed: `{name}`" for name in tests.data.get("failed", [])]
    bench = [p for p in parts if p.name.startswith("benchmark ")]
    if bench:
        lines += ["", "## Benchmarks (GPU rows of experiments/benchmarks/run.py, 3 paired rounds)", "",
                  "| id | what | baseline | size | device | ratio | target | met? |", "|---|---|---|---|---|---|---|---|"]
        for p in bench:
            if p.data.get("complete"):
                lines += p.data["rows"]
            else:
                lines += [f"| {p.name[-2:]} | {p.status}; rows printed before: {'; '.join(p.data.get('rows', [])) or 'none'} "
                          "| | | | | | |"]
    p3 = by_name.get("P3 batched seeds")
    if p3 is not None and p3.data:
        d = p3.data
        lines += ["", "## P3: batched seeds", "",
                  f"{d['k']} seeds of the adding problem (N={d['size']}, T=50, B=32, {d['steps']} steps, one repetition) "
                  f"on {d['device']}: sequential {d['sequential_s']:.2f} s, batched {d['batched_s']:.2f} s, "
                  f"**{d['ratio']:.2f}x** (target >= 6x for 8 seeds)."]
    nav = [p for p in parts if p.name.startswith("navigation")]
    if nav:
        lines += ["", "## Navigation training at the paper's size", "",
                  "| precision | hidden | place cells | batch | T | steps | seconds | steps/s | ms/step | peak GiB | loss after warm-up -> last |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in nav:
            d = p.data
            if not d:
                lines.append(f"| {p.name.split(', ')[-1]} | {p.status} | | | | | | | | | |")
                continue
            peak = f"{d['peak_memory_gib']:.2f}" if d.get("peak_memory_gib") is not None else "-"
            label = d["asked_precision"] + ("" if d["precision"] == d["asked_precision"] else f" (ran {d['precision']})")
            lines.append(
                f"| {label} | {d['hidden']} | {d['place_cells']} | {d['batch']} | {d['seq_len']} | {d['steps']} | "
                f"{d['seconds']:.1f} | {d['steps_per_second']:.2f} | {d['ms_per_step']:.1f} | {peak} | "
                f"{d['loss_after_warmup']:.4f} -> {d['loss_last']:.4f} |"
            )
    est = by_name.get("paper preset GPU-hour estimate")
    if est is not None and est.data:
        d = est.data
        lines += ["", "## Paper preset: GPU hours for all navigation runs", "",
                  f"{d['runs']} runs (`moduli reproduce navigation --preset paper`).", "",
                  f"- FLOP model: {d['model_hours']:.1f} GPU hours ({d['assumptions']})"]
        for precision in ("fp32", "bf16"):
            if f"{precision}_hours" in d:
                lines.append(f"- measured {precision} step ({d[f'{precision}_ms_per_step']:.1f} ms, every run's "
                             f"steps and evaluations at that rate): {d[f'{precision}_hours']:.1f} GPU hours")
    logs = [p for p in parts if p.status != "ok" and p.log_tail]
    if logs:
        lines += ["", "## Output of the parts that did not finish cleanly", ""]
        for p in logs:
            lines += [f"### {p.name}", "", "```", p.log_tail, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, seconds of budget, temporary output")
    parser.add_argument("--out-dir", type=Path, default=None, help="folder of the results file")
    parser.add_argument("--budget", type=float, default=None, help="total seconds (default 480; dry run 300)")
    parser.add_argument("--inner", choices=("navigation", "p3"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--train-seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=".", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget is not None and args.budget <= 0:
        parser.error(f"--budget must be a positive number of seconds, got {args.budget}")
    return args


def main(argv: list[str] | None = None) -> Path | None:
    """Run every part within the budget and write the results file; returns its path."""
    args = parse_args(argv)
    if args.inner == "navigation":  # a part's own process
        inner_navigation(args)
        return None
    if args.inner == "p3":
        args.json.write_text(json.dumps(inner_p3(args), indent=1))
        return None
    started = time.perf_counter()
    device_name = check_environment(args.dry_run)
    budgets = Budgets.dry() if args.dry_run else Budgets()
    if args.budget is not None:
        budgets.total = args.budget
    device = "cpu" if args.dry_run else "cuda"
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="gpu_check_")) if args.dry_run else RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    deadline = started + budgets.total
    navigation_reserve = 2 * (budgets.train + budgets.setup)  # kept for the navigation runs

    def allowed(budget: float, reserve: float = 0.0) -> float:
        return max(0.0, min(budget, deadline - time.perf_counter() - reserve - 5.0))

    parts: list[Part] = []
    print(f"gpu_check on {device_name}: budget {budgets.total:.0f} s, results in {out_dir}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_work_") as tmp:
        work = Path(tmp)
        steps: list[tuple[str, Any]] = [("tests", lambda b: part_tests(b, args.dry_run))]
        steps += [(f"bench {g}", lambda b, g=g: part_benchmark(g, device, args.dry_run, b, work)) for g in BENCH_GROUPS]
        steps += [("P3", lambda b: part_batched_seeds(device, args.dry_run, b, work))]
        budget_of = {"tests": budgets.tests, "P3": budgets.p3, **{f"bench {g}": budgets.bench[g] for g in BENCH_GROUPS}}
        for name, run in steps:
            budget = allowed(budget_of[name], navigation_reserve)
            if budget < 5.0:
                parts.append(Part(name, "skipped: no time left in the budget"))
                continue
            parts.append(run(budget))
            print(f"  {parts[-1].name}: {parts[-1].status} ({parts[-1].seconds:.0f} s)", flush=True)
        budget = allowed(navigation_reserve)
        if budget < navigation_reserve / 2:
            parts += [Part(f"navigation training, {p}", "skipped: no time left in the budget") for p in PRECISIONS]
        else:
            seconds = min(budgets.train, budget / 2 - budgets.setup)
            for part in part_navigation(device, args.dry_run, seconds, budget, work):
                parts.append(part)
                print(f"  {part.name}: {part.status} ({part.seconds:.0f} s)", flush=True)
        navigation = {p.name.split(", ")[-1]: p for p in parts if p.name.startswith("navigation")}
        parts.append(part_estimate(navigation))
    total = time.perf_counter() - started
    path = out_dir / file_name(device_name)
    path.write_text(report(device_name, args.dry_run, parts, budgets, total))
    print(f"written to {path} ({total:.0f} s)", flush=True)
    return path


if __name__ == "__main__":
    main()
