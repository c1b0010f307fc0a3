"""Performance benchmarks of the toolkit: one command, one table.

Every figure is a RATIO to a baseline measured in the same process (paired rounds: baseline and
variant are timed alternately after warm-up, the reported ratio is the median over rounds), so
that load from other jobs on the machine cancels as far as possible. On a CPU with one thread the
clock is the process's CPU time (``--clock``), which other jobs on shared cores do not inflate.

    python experiments/benchmarks/run.py [--quick] [--device cpu|cuda] [--only P1,P2,...]
                                         [--out experiments/results/benchmarks/table.md]

Rows: P1 training step vs torch.nn.RNN; P2 penalty overhead (fixed / learned torus DoG, the
learned one also through the reference autograd path, on ``torch.nn.RNN``, and at N = 4096) and
peak memory of P1/P2; P3 batched seeds (measured by ``batched_seeds.py`` when present); P4 sparse
inference of pruned RNNs vs the dense forward; P5 modular normalize / dualize vs one forward +
backward; P6 end-to-end navigation reproduction (recorded wall time, run separately).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modula_core import Vector  # noqa: E402
from modula_core.compound import MLP  # noqa: E402
from modula_core.recurrent import ElmanRNN  # noqa: E402
from moduli import DoG, ModuliRegularizer, Torus  # noqa: E402
from moduli.models import ElmanStack, PathIntegrationRNN  # noqa: E402
from moduli.pruning import moduli_masks, random_masks_like  # noqa: E402
from moduli.sparse_inference import block_density, export_sparse  # noqa: E402

GROUPS = ("P1", "P2", "P3", "P4", "P5", "P6")
DEFAULT_OUT = ROOT / "experiments" / "results" / "benchmarks" / "table.md"
NAVIGATION_RESULTS = ROOT / "experiments" / "results" / "navigation" / "cpu"
BATCHED_SEEDS = Path(__file__).resolve().parent / "batched_seeds.py"


@dataclass
class Row:
    """One line of the table."""

    id: str  # "P1", "P4", ...
    what: str  # the measured variant
    baseline: str  # what the ratio divides by
    size: str  # sizes the figure was measured at
    device: str  # device it ran on
    ratio: float | None  # variant / baseline (None: not measured, see ``note``)
    target: str  # e.g. "<= 1.05x", ">= 10x", "report"
    met: str  # "yes" | "no" | "-"
    note: str = ""  # replaces the ratio when not measured; extra facts otherwise

    def ratio_text(self) -> str:
        if self.ratio is None:
            return self.note or "not measured"
        text = f"{self.ratio:.3g}x"
        return f"{text} ({self.note})" if self.note else text


def judge(ratio: float | None, target: str) -> str:
    """'yes' / 'no' for targets of the form '<= a' or '>= a' (an 'x' suffix is allowed), else '-'."""
    if ratio is None or not math.isfinite(ratio):
        return "-"
    for op in ("<=", ">="):
        if target.startswith(op):
            bound = float(target[len(op):].strip().rstrip("x").split()[0])
            return "yes" if (ratio <= bound if op == "<=" else ratio >= bound) else "no"
    return "-"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paired_ratio(
    baseline: Callable[[], object], variant: Callable[[], object], device: torch.device, rounds: int, warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float, float]:
    """Median over ``rounds`` of time(variant) / time(baseline), timed alternately.

    ``clock``: wall time (default) or ``time.process_time`` (CPU time of this process: on one
    thread, the work done, whatever other jobs share the cores). Returns ``(ratio, median baseline
    seconds, median variant seconds)``.
    """
    for _ in range(warmup):
        baseline()
        variant()
    synchronize(device)
    ratios, tb, tv = [], [], []
    for _ in range(rounds):
        start = clock()
        baseline()
        synchronize(device)
        middle = clock()
        variant()
        synchronize(device)
        end = clock()
        tb.append(middle - start)
        tv.append(end - middle)
        ratios.append((end - middle) / (middle - start))
    return statistics.median(ratios), statistics.median(tb), statistics.median(tv)


# ----------------------------------------------------------------------------- P1 / P2 models
class TorchNavigation(torch.nn.Module):
    """The path-integration network with ``torch.nn.RNN`` as the recurrent core (and optionally a
    moduli regulariser of its W_hh, the way a user adds one to their own model)."""

    def __init__(self, place_cells: int, hidden: int, regularizer: ModuliRegularizer | None = None) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(place_cells, hidden, bias=False)
        self.rnn = torch.nn.RNN(2, hidden, nonlinearity="relu", bias=False)
        self.decoder = torch.nn.Linear(hidden, place_cells, bias=False)
        self.regularizer = regularizer

    def forward(self, velocity: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(velocity, self.encoder(start).unsqueeze(0))
        return self.decoder(states)

    def penalty(self) -> torch.Tensor:
        if self.regularizer is None:
            return self.encoder.weight.new_zeros(())
        return self.regularizer(self.rnn.weight_hh_l0)

    def embedding_parameters(self) -> list:
        return [self.regularizer.embedding] if self.regularizer is not None and self.regularizer.learn_embedding else []


VARIANTS = ("torch", "moduli", "fixed", "learned", "learned-fused", "learned-autograd", "torch-learned")


def _torus_dog(hidden: int, learned: bool, path: str = "auto") -> ModuliRegularizer:
    reg = ModuliRegularizer(Torus(), hidden, DoG(), learn_embedding=learned)
    reg.penalty_path = path
    return reg


def navigation_model(variant: str, place_cells: int, hidden: int) -> torch.nn.Module:
    """variant: "torch" | "moduli" (no penalty) | "fixed" | "learned" | "learned-fused" |
    "learned-autograd" (torus DoG penalty on PathIntegrationRNN; the learned one on the path "auto"
    picks, on the fused kernel uncompiled, or through the reference autograd path) | "torch-learned"
    (``torch.nn.RNN`` with a learned torus DoG penalty)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    if variant == "torch":
        return TorchNavigation(place_cells, hidden)
    if variant == "torch-learned":
        return TorchNavigation(place_cells, hidden, _torus_dog(hidden, learned=True))
    if variant == "moduli":
        return PathIntegrationRNN(place_cells, hidden)
    path = {"learned-autograd": "autograd", "learned-fused": "fused"}.get(variant, "auto")
    learned = variant != "fixed"
    return PathIntegrationRNN(place_cells, hidden, regularizer=lambda l, h: _torus_dog(h, learned, path))


def warm_up_penalty(model: torch.nn.Module) -> float:
    """Run the model's penalty forward and backward once (compiling its kernels where the learned
    penalty is compiled), then drop the gradients; returns the seconds it took."""
    started = time.perf_counter()
    penalty = model.penalty()
    if penalty.requires_grad:
        penalty.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


def training_step(model: torch.nn.Module, device: torch.device, batch: int, steps: int, place_cells: int):
    """One closure: forward + cross-entropy + penalty + backward + AdamW (+ RiemannianAdam on positions)."""
    import geoopt

    model.to(device)
    embeddings = list(model.embedding_parameters())
    ids = {id(p) for p in embeddings}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if id(p) not in ids], lr=1e-4)
    riemannian = geoopt.optim.RiemannianAdam(embeddings, lr=1e-3) if embeddings else None
    gen = torch.Generator().manual_seed(0)
    velocity = (torch.randn(steps, batch, 2, generator=gen) * 0.01).to(device)
    start = torch.softmax(torch.randn(batch, place_cells, generator=gen), -1).to(device)
    target = torch.softmax(torch.randn(steps, batch, place_cells, generator=gen), -1).to(device)

    def zero_grad() -> None:
        optimizer.zero_grad(set_to_none=True)
        if riemannian is not None:
            riemannian.zero_grad(set_to_none=True)

    def forward_backward() -> None:
        logits = model(velocity, start)
        loss = -(target * torch.log_softmax(logits, -1)).sum(-1).mean() + model.penalty()
        zero_grad()
        loss.backward()

    def step() -> None:
        forward_backward()
        optimizer.step()
        if riemannian is not None:
            riemannian.step()

    def warm_up() -> None:
        """forward + backward without an optimiser step, gradients dropped: lazy initialisations
        (and the learned penalty's compilation) happen here, not in a measured step."""
        forward_backward()
        zero_grad()

    step.warm_up = warm_up
    return step


def memory_probe(spec: str) -> dict:
    """Peak memory (bytes) of the first two training steps of one variant, in this (fresh) process.

    ``spec`` = "variant,device,hidden,batch,steps,place_cells". CPU: peak resident set during the
    steps above the resident set before them (model and data built, one forward + backward run and
    its gradients dropped, so that lazy initialisations and compiled kernels exist; optimiser state
    not yet); CUDA: ``torch.cuda.max_memory_allocated`` above the memory allocated before the steps.
    """
    variant, device_name, hidden, batch, steps, place_cells = spec.split(",")
    device = torch.device(device_name)
    torch.manual_seed(0)
    model = navigation_model(variant, int(place_cells), int(hidden))
    step = training_step(model, device, int(batch), int(steps), int(place_cells))
    step.warm_up()  # the same for every variant; one-time compilation is not the step's memory
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        step()
        synchronize(device)
        return {"peak_bytes": torch.cuda.max_memory_allocated(device) - base}
    if Path("/proc/self/clear_refs").exists():
        # Linux: reset the high-water mark (VmHWM) so that earlier peaks (model building) do not count;
        # the parent sets MALLOC_MMAP_THRESHOLD_ so that freed tensors leave the resident set at once
        Path("/proc/self/clear_refs").write_text("5")
        base = _proc_status_kib("VmRSS")
        step()
        step()
        return {"peak_bytes": (_proc_status_kib("VmHWM") - base) * 1024, "method": "VmHWM - VmRSS"}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"peak_bytes": (peak - base) * scale, "method": "max RSS growth (lower bound)"}


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_memory(
    variant: str, device: torch.device, hidden: int, batch: int, steps: int, place_cells: int, threads: int,
    fresh: bool = True,
) -> int:
    """Peak memory (bytes) of ``memory_probe``: in a fresh subprocess, or in this one (``fresh=False``,
    the quick preset: saves an interpreter start per variant, at tiny sizes only; and on CUDA, whose
    allocator counts the peak exactly in any process)."""
    spec = f"{variant},{device},{hidden},{batch},{steps},{place_cells}"
    if not fresh or device.type == "cuda":
        return int(memory_probe(spec)["peak_bytes"])
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-probe", spec, "--threads", str(threads)],
        capture_output=True, text=True, check=True, cwd=ROOT,
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


# ----------------------------------------------------------------------------- groups
class Bench:
    """Runs the groups for one device / size preset and collects rows."""

    def __init__(
        self, device: torch.device, quick: bool, rounds: int, threads: int, p5_widths: list[int],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.device = device  # where everything runs
        self.quick = quick  # tiny sizes
        self.rounds = rounds  # paired timing rounds per figure
        self.threads = threads  # torch CPU threads
        self.p5_widths = p5_widths  # widths of P5
        self.clock = clock  # what paired_ratio times: time.perf_counter (wall) or time.process_time (CPU)
        self.rows: list[Row] = []  # collected table
        self.dev = device_label(device)  # device column text
        self.memory_method = "CUDA allocator" if device.type == "cuda" else "fresh process"  # see peak_memory

    def add(self, **kw) -> None:
        kw.setdefault("device", self.dev)
        kw["met"] = judge(kw.get("ratio"), kw["target"])
        self.rows.append(Row(**kw))
        r = self.rows[-1]
        print(f"  {r.id:4s} {r.what[:60]:60s} {r.ratio_text():>18s}  target {r.target}", flush=True)

    def gpu_placeholders(self, group: str) -> None:
        if self.device.type == "cpu" and not torch.cuda.is_available():
            gpu_size = {"P1": "N=4096, B=200, T=50", "P2": "N=4096", "P4": "N=4096, B=1 and 64"}[group]
            self.add(id=group, what="GPU figures", baseline="as above", size=gpu_size, device="cuda",
                     ratio=None, target="as above", note="not measured (no GPU)")

    # P1 / P2
    def p1_p2(self, groups: set[str]) -> None:
        cuda = self.device.type == "cuda"
        place = 32 if self.quick else 512
        t_len = 10 if self.quick else 50
        if "P1" in groups:
            n, b = (64, 8) if self.quick else ((4096, 200) if cuda else (512, 64))
            torch.manual_seed(0)
            base = training_step(navigation_model("torch", place, n), self.device, b, t_len, place)
            ours = training_step(navigation_model("moduli", place, n), self.device, b, t_len, place)
            ratio, tb, tv = paired_ratio(base, ours, self.device, self.rounds, clock=self.clock)
            size = f"N={n}, B={b}, T={t_len}, P={place}"
            self.add(id="P1", what="train step, PathIntegrationRNN (ElmanStack, fused kernel) + AdamW",
                     baseline="torch.nn.RNN, same net", size=size, ratio=ratio, target="<= 1.05x",
                     note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms")
            mb = peak_memory("torch", self.device, n, b, t_len, place, self.threads, fresh=not self.quick)
            mv = peak_memory("moduli", self.device, n, b, t_len, place, self.threads, fresh=not self.quick)
            self.add(id="P1", what=f"peak memory of the train step ({self.memory_method})", baseline="torch.nn.RNN",
                     size=size, ratio=mv / max(mb, 1), target="report",
                     note=f"{mv / 2**20:.1f} vs {mb / 2**20:.1f} MiB")
            self.gpu_placeholders("P1")
        if "P2" in groups:
            self.p2()

    def p2(self) -> None:
        """Penalty overheads: one AdamW step with the torus DoG penalty vs the same step without it."""
        cuda = self.device.type == "cuda"
        place = 32 if self.quick else 512
        n, b, t_len = (64, 8, 10) if self.quick else ((4096, 200, 50) if cuda else (1024, 32, 20))
        size = f"N={n}, B={b}, T={t_len}, P={place}"

        def timed(base_variant: str, variant: str, hidden: int = n) -> tuple[float, float, float, float, str]:
            """(ratio, baseline s, variant s, first penalty call s, the learned penalty's path)."""
            torch.manual_seed(0)
            base = training_step(navigation_model(base_variant, place, hidden), self.device, b, t_len, place)
            model = navigation_model(variant, place, hidden)
            step = training_step(model, self.device, b, t_len, place)
            first = warm_up_penalty(model)
            regs = list(model.rnn.regularizers or []) if hasattr(model.rnn, "regularizers") else [model.regularizer]
            path = regs[0]._penalty_path() if regs and regs[0] is not None else "-"
            return (*paired_ratio(base, step, self.device, self.rounds, clock=self.clock), first, path)

        mem_plain = peak_memory("moduli", self.device, n, b, t_len, place, self.threads, fresh=not self.quick)
        for variant, target, mem_target in (("fixed", "<= 1.03x", "report"), ("learned", "<= 1.10x", "<= 1.10x")):
            ratio, tb, tv, first, path = timed("moduli", variant)
            learned_path = path
            extra = " + RiemannianAdam on positions" if variant == "learned" else ""
            self.add(id="P2", what=f"train step with {variant} torus DoG penalty{extra}",
                     baseline="same step, no penalty", size=size, ratio=ratio, target=target,
                     note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms")
            mem = peak_memory(variant, self.device, n, b, t_len, place, self.threads, fresh=not self.quick)
            self.add(id="P2", what=f"peak memory, {variant} penalty ({self.memory_method})",
                     baseline="no penalty", size=size, ratio=mem / max(mem_plain, 1), target=mem_target,
                     note=f"{mem / 2**20:.1f} vs {mem_plain / 2**20:.1f} MiB")
            if variant == "learned":
                self.add(id="P2", what="first call of the learned penalty (forward + backward)", baseline="-",
                         size=size, ratio=None, target="report",
                         note=f"{first:.1f} s, path {path!r}" + (
                             " (compiling; less when torch.compile's disk cache has it)" if path == "compiled" else ""))
        for variant, path in (("learned-fused", "fused"), ("learned-autograd", "autograd")):
            if path == learned_path:
                continue  # "auto" took this path already (no compilation on this device or at this size)
            ratio, tb, tv, _, _ = timed("moduli", variant)
            how = "fused kernel uncompiled" if path == "fused" else "reference autograd path"
            self.add(id="P2", what=f"train step with learned penalty, {how} (penalty_path={path!r})",
                     baseline="same step, no penalty", size=size, ratio=ratio, target="report",
                     note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms")
        ratio, tb, tv, _, _ = timed("torch", "torch-learned")
        self.add(id="P2", what="torch.nn.RNN + AdamW + learned torus DoG penalty (RiemannianAdam on positions)",
                 baseline="same torch.nn.RNN step, no penalty", size=size, ratio=ratio, target="<= 1.10x",
                 note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms")
        if not self.quick and not cuda:
            big = 4096
            ratio, tb, tv, first, path = timed("moduli", "learned", hidden=big)
            self.add(id="P2", what="train step with learned torus DoG penalty + RiemannianAdam on positions",
                     baseline="same step, no penalty", size=f"N={big}, B={b}, T={t_len}, P={place}", ratio=ratio,
                     target="report", note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms; first call {first:.1f} s, path {path!r}")
        self.gpu_placeholders("P2")

    # P3
    def p3(self) -> None:
        if not BATCHED_SEEDS.exists():
            self.add(id="P3", what="batched seeds", baseline="seeds one after another", size="-",
                     ratio=None, target="see batched_seeds.py",
                     note=f"not measured ({BATCHED_SEEDS.relative_to(ROOT)} absent)")
            return
        spec = importlib.util.spec_from_file_location("moduli_bench_batched_seeds", BATCHED_SEEDS)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = module.measure(self.quick, device=self.device.type)
        cuda = self.device.type == "cuda"
        target = ">= 6x" if cuda else str(result.get("target", "report"))  # 8 seeds on one GPU
        self.add(id="P3", what="batched seeds (batched_seeds.measure)", baseline="seeds one after another",
                 size=str(result.get("size", "-")), device=self.dev if cuda else str(result.get("device", self.dev)),
                 ratio=float(result["ratio"]), target=target)

    # P4
    def p4(self) -> None:
        n = 128 if self.quick else 4096
        batches = (1, 8) if self.quick else (1, 64)
        t_len = 5 if self.quick else 10
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(0)
        model = ElmanStack(2, n, 1, "relu",
                           regularizer=lambda l, h: ModuliRegularizer(Torus(), h, DoG(), generator=gen)).to(self.device)
        coefficients = model.regularizers[0].coefficients()
        dense_w = model.weight_hh_l0.detach().clone()
        for sparsity in (0.9, 0.95, 0.98):
            masks = {"moduli": moduli_masks({"w": coefficients}, sparsity)["w"]}
            masks["random"] = random_masks_like({"w": masks["moduli"]}, generator=torch.Generator().manual_seed(1))["w"]
            exports = {}
            for kind, mask in masks.items():
                with torch.no_grad():
                    model.weight_hh_l0.copy_(dense_w * mask)
                if kind == "moduli":
                    exports["moduli, Hilbert order, BSR 16"] = export_sparse(model, "manifold", "bsr")
                    exports["moduli, Hilbert order, CSR"] = export_sparse(model, "manifold", "csr")
                    ordered = exports["moduli, Hilbert order, CSR"]
                    tiles = block_density(ordered.w_hh[0].to_dense(), 16)
                else:
                    exports["random, CSR"] = export_sparse(model, "none", "csr")
                    random_tiles = block_density(model.weight_hh_l0.detach(), 16)
            with torch.no_grad():
                model.weight_hh_l0.copy_(dense_w * masks["moduli"])
            for b in batches:
                x = torch.randn(t_len, b, 2, generator=gen).to(self.device)

                def dense_forward() -> None:
                    with torch.no_grad():
                        model(x)

                for name, sparse in exports.items():
                    ratio, tb, tv = paired_ratio(dense_forward, lambda: sparse(x), self.device, self.rounds,
                                                 clock=self.clock)
                    speedup = 1.0 / ratio
                    target = "-"
                    if b == batches[-1] and sparsity in (0.9, 0.98):
                        target = ">= 3x" if sparsity == 0.9 else ">= 10x"
                    tiles_note = f"tiles {tiles:.2f}" if name.startswith("moduli") else f"tiles {random_tiles:.2f}"
                    self.add(id="P4", what=f"speed-up, {sparsity:.0%} sparse W_hh: {name}",
                             baseline="dense forward (fused), same weights", size=f"N={n}, B={b}, T={t_len}",
                             ratio=speedup, target=target,
                             note=f"{tv * 1e3:.2f} vs {tb * 1e3:.2f} ms, {tiles_note}")
        self.gpu_placeholders("P4")

    # P5
    def p5(self) -> None:
        t_len, b = (5, 8) if self.quick else (50, 64)
        mlp_batch = 16 if self.quick else 256
        for width in self.p5_widths:
            atom = ElmanRNN(width, width, "relu")
            w = atom.initialize(device=self.device)
            x = torch.randn(t_len, b, width, device=self.device)
            mlp = MLP(width, width, width, 3)
            wm = mlp.initialize(device=self.device)
            xm = torch.randn(mlp_batch, width, device=self.device)
            for name, module, weights, inp, size in (
                ("Elman RNN atom", atom, w, x, f"width={width}, B={b}, T={t_len}"),
                ("MLP (3 Linear)", mlp, wm, xm, f"width={width}, B={mlp_batch}"),
            ):
                def step(module=module, weights=weights, inp=inp) -> None:
                    for t in weights:
                        t.grad = None
                    module(inp, weights).square().mean().backward()

                step()
                grads = Vector([t.grad.clone() for t in weights])
                rounds = self.rounds if width <= 2048 else max(2, self.rounds // 2)
                for op, call in (
                    ("normalize", lambda module=module, grads=grads: module.normalize(Vector([g.clone() for g in grads]))),
                    ("dualize", lambda module=module, grads=grads: module.dualize(grads)),
                ):
                    ratio, tb, tv = paired_ratio(step, call, self.device, rounds, clock=self.clock)
                    self.add(id="P5", what=f"{op} of the {name} update", baseline="one forward + backward",
                             size=size, ratio=ratio, target="<= 0.1x", note=f"{tv * 1e3:.1f} vs {tb * 1e3:.1f} ms")

    # P6
    def p6(self) -> None:
        command = "moduli reproduce navigation --preset cpu"
        wall = recorded_wall_time(NAVIGATION_RESULTS)
        note = f"run separately: `{command}`; " + (
            f"recorded wall time {wall[0]:.0f} s ({wall[1]})" if wall else "not measured (no recorded wall time)"
        )
        self.add(id="P6", what="navigation reproduction, end to end", baseline="-", size="preset cpu",
                 device="cpu", ratio=None, target="report", note=note)


def recorded_wall_time(folder: Path) -> tuple[float, str] | None:
    """First numeric value under a key containing "wall" in a JSON file below ``folder``."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                for key, value in item.items():
                    if "wall" in str(key).lower() and isinstance(value, (int, float)) and not isinstance(value, bool):
                        return float(value), str(path.relative_to(ROOT))
                    stack.append(value)
            elif isinstance(item, list):
                stack.extend(item)
    return None


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''})"


def markdown(rows: list[Row], header: str) -> str:
    lines = [header, "", "| id | what | baseline | size | device | ratio | target | met? |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.id, r.what, r.baseline, r.size, r.device, r.ratio_text(), r.target, r.met]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (< 60 s); what the tests run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups, e.g. P1,P4")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown table")
    parser.add_argument("--rounds", type=int, default=None, help="paired timing rounds (default 7, quick 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    parser.add_argument("--clock", default="auto", choices=("auto", "wall", "cpu"),
                        help="what is timed: wall time, or the process's CPU time (the work done, whatever "
                             "else shares the cores); auto: cpu on a CPU with one thread, wall otherwise")
    parser.add_argument("--p5-widths", default=None, help="widths of P5 (default 1024,2048 on CPU, 1024,4096 on CUDA)")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    groups = [g.strip().upper() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        parser.error(f"--only takes a comma-separated subset of {','.join(GROUPS)}, got {args.only!r}")
    args.groups = groups
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    """Run the benchmarks, print the table, write it as Markdown; returns the rows."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return []
    device = torch.device(args.device)
    if args.p5_widths:
        widths = [int(w) for w in args.p5_widths.split(",")]
    else:
        widths = [32, 64] if args.quick else ([1024, 4096] if device.type == "cuda" else [1024, 2048])
    rounds = args.rounds or (3 if args.quick else 7)
    clock_name = args.clock if args.clock != "auto" else ("cpu" if device.type == "cpu" and args.threads == 1 else "wall")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    bench = Bench(device, args.quick, rounds, args.threads, widths, clock)
    command = "python experiments/benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"device: {bench.dev}; torch {torch.__version__}; {os.cpu_count()} CPU cores; "
          f"{'quick' if args.quick else 'full'} sizes; {rounds} paired rounds per figure; {clock_name} clock")
    started = time.perf_counter()
    groups = set(args.groups)
    if groups & {"P1", "P2"}:
        bench.p1_p2(groups)
    if "P3" in groups:
        bench.p3()
    if "P4" in groups:
        bench.p4()
    if "P5" in groups:
        bench.p5()
    if "P6" in groups:
        bench.p6()
    elapsed = time.perf_counter() - started
    header = (
        f"# Benchmarks\n\nCommand: `{command.strip()}`  \nDevice: {bench.dev}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores (shared with other jobs)  \nRatios: median over {rounds} paired rounds "
        f"(baseline and variant timed alternately after warm-up) of variant / baseline "
        f"{'CPU time of the process' if clock_name == 'cpu' else 'wall time'}; P4 gives the "
        f"speed-up (baseline / variant). Total time {elapsed:.0f} s."
    )
    table = markdown(bench.rows, header)
    print()
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(f"written to {args.out}")
    return bench.rows


if __name__ == "__main__":
    main()
