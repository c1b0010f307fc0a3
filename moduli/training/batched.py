"""Train K runs that differ only in their seed as one batched model (a step of the one loop).

Every parameter of the K runs is stacked along a new leading axis of size K; the recurrence
``h_t = phi(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` runs for all K runs at once with one
``torch.baddbmm`` / ``torch.bmm`` per time step (``torch.func.vmap`` has no batching rule for
torch's fused RNN kernel), and one optimiser steps the stacked tensors. Each run keeps what the
normal :class:`~moduli.training.loop.Trainer` gives it: its own initial weights (a ``Trainer`` is
built per run, seeded as usual, and its parameters become views into the stacked tensors), its
own data generator, pruning masks computed on its own slice, its own gradient-clipping norm, its
own evaluation, metrics, checkpoints and summary in its own run directory. A batched run's files
are in the normal format, so resume, ``moduli evaluate``, sweeps and tables treat it like any run;
its summary also records ``batched_runs`` (K), and ``wall_time_s`` is the group's wall time.

On CPU the results are bit-identical to training each run with ``run_config`` (batched matrix
products fall back to one ``mm`` per slice, and every reduction of a run is computed as in the
unbatched code), except for products of fewer than 400 multiply-adds per slice, which torch
computes with a naive kernel (last-bit differences); on CUDA, cuBLAS batched products and cuDNN's
fused RNN may differ in the last bits. Evaluation runs per run, unbatched. Speed: on a CPU the
stacked weights no longer fit in cache as one run's do, so the gain comes from fewer operator
calls and is large only when those dominate (small N or batch); see
experiments/benchmarks/batched_seeds.py.

Supported: the tasks that define ``stacked_losses`` (``Task.batchable``: adding, navigation with
every place-cell tuning, velocity unit and W_hh initialisation, and digits; the inputs and targets
come from each run's own task); regulariser ``none``/``moduli``/``l1``/
``mean_matched_l1`` with a fixed embedding (``permute`` included); pruning ``none``/``magnitude``/
``random`` (any scope, schedule and parameter list) and stabilising epochs; optimisers ``adamw``/``adam``/``sgd``; gradient
clipping (each run by its own gradient norm); fp32 on CPU or CUDA. Anything else (the language
task, learned embeddings, the modular optimisers, ``pruning.lottery``, ``pruning.method: moduli``,
``optim.lr_schedule: plateau``, bf16) is trained sequentially by :func:`train_batched`, which says
why in :func:`unsupported_reason`. A group whose unfinished runs were interrupted at different
epochs is also resumed sequentially.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict
from contextlib import ExitStack
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config import RunConfig, config_hash
from ..errors import RunLockedError
from ..pruning.masks import apply_masks_
from ..run_dir import RunDir
from ..run_lock import RunLock
from ..tasks.registry import TASKS, task_class
from .builders import build_optimizers
from .loop import DivergenceError, Outcome, StepResult, Trainer, fit, interrupted_text, run_config

__all__ = ["StackedSeeds", "seed_groups", "train_batched", "unsupported_reason"]


def unsupported_reason(cfg: RunConfig) -> str | None:
    """Why ``cfg`` cannot be trained batched (one short phrase), or None if it can."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"cfg must be a RunConfig (from moduli.config.load_config), got {type(cfg).__name__}")
    batchable = [name for name, task in TASKS.items() if task.batchable]
    checks = [
        (not task_class(cfg.task).batchable, f"task {cfg.task!r} (only {', '.join(batchable)} are batched)"),
        (cfg.regularizer.kind != "none" and cfg.regularizer.learn_embedding, "a learned embedding"),
        (cfg.optim.name not in ("adamw", "adam", "sgd"), f"optimiser {cfg.optim.name!r}"),
        (cfg.pruning.lottery, "lottery retraining"),
        (cfg.pruning.method == "moduli", "moduli pruning"),
        (cfg.optim.lr_schedule != "none", f"learning-rate schedule {cfg.optim.lr_schedule!r} (one lr per run)"),
        (cfg.train.precision != "fp32", f"precision {cfg.train.precision!r}"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def _group_key(cfg: RunConfig) -> str:
    """The config hash with the seed and replicate zeroed: equal for runs that differ only there."""
    train = dataclasses.replace(cfg.train, seed=0, replicate=0)
    return config_hash(dataclasses.replace(cfg, train=train))


def seed_groups(configs: Sequence[RunConfig]) -> list[list[int]]:
    """Indices of ``configs`` grouped for training: batchable configs that differ only in
    ``train.seed`` / ``train.replicate`` share a group; every other config is a group of one.

    Groups are listed in the order of their first member; members keep their order.
    """
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        key = _group_key(cfg) if unsupported_reason(cfg) is None else f"single-{i}"
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _clone_tensors(value: Any) -> Any:
    """``value`` with every tensor cloned (views of the stacked weights become compact copies)."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _clone_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone_tensors(item) for item in value)
    return value


class _StackedWeights(nn.Module):
    """The optimiser's view of the stacked parameters (the interface ``build_optimizers`` reads)."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self.stacked = nn.ParameterList(params)  # (K, *shape) per parameter, in the runs' order

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.stacked)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return []


class StackedSeeds:
    """K runs whose weights live in stacked tensors: one step of all K at a time.

    Each run keeps its :class:`Trainer` (task, data stream, masks, history, files); its weights
    become slices of one leaf per parameter, and one optimiser steps the stacked leaves.
    """

    def __init__(self, cfgs: Sequence[RunConfig], run_dirs: Sequence[RunDir], quiet: bool) -> None:
        self.cfg, self.quiet, self.k = cfgs[0], quiet, len(cfgs)
        self.trainers: list[Trainer] = []
        self.rng_states: list[Tensor] = []  # each run's global CPU RNG state, as its own run keeps it
        for cfg, run_dir in zip(cfgs, run_dirs):
            trainer = Trainer(cfg, run_dir, quiet=True)
            trainer.resume()
            self.trainers.append(trainer)
            self.rng_states.append(torch.get_rng_state())
        first = self.trainers[0]
        self.aligned = all((t.start_epoch, t.step) == (first.start_epoch, first.step) for t in self.trainers)
        if not self.aligned:
            return
        if first.start_epoch > 0 and not quiet:
            print(f"{self.cfg.task} x{self.k}: resuming from step {first.step} (epoch {first.start_epoch} of "
                  f"{first.total_epochs} done)", file=sys.stderr, flush=True)
        self.device, self.step, self.start_epoch = first.device, first.step, first.start_epoch
        self.task = type(first.task)
        self._stack_parameters()
        self._stack_optimizer_state()
        regs = [t.model.rnn.regularizers for t in self.trainers]
        self.regularizer = None if regs[0] is None else regs[0][0]  # strength, exponent, reduction
        self.coefficients = (
            None if regs[0] is None else torch.stack([r[0].coefficients().detach() for r in regs])
        )  # (K, N, N)
        self.masks: dict[str, Tensor] = {}  # parameter name -> stacked bool mask (K, *shape)

    # ------------------------------------------------------------------ set-up
    def _stack_parameters(self) -> None:
        """Stack each weight of the K models into one leaf; the models' weights become its slices."""
        models = [t.model for t in self.trainers]
        ids = {id(p) for p in models[0].weight_parameters()}
        self.names = [n for n, p in models[0].named_parameters() if id(p) in ids]  # optimiser order
        self.per_run = [dict(m.named_parameters()) for m in models]  # run -> name -> parameter
        self.params: dict[str, nn.Parameter] = {}
        for name in self.names:
            stacked = nn.Parameter(torch.stack([params[name].detach() for params in self.per_run]))
            for k, params in enumerate(self.per_run):
                params[name].data = stacked.data[k]
            self.params[name] = stacked
        self.holder = _StackedWeights([self.params[n] for n in self.names])
        self.optimizer, _ = build_optimizers(self.cfg.optim, self.holder, self.cfg.regularizer.embedding_lr)  # no positions

    def _stack_optimizer_state(self) -> None:
        """Resumed runs: their optimiser states (loaded per run) become the stacked state."""
        optimizers = [t.optimizer for t in self.trainers]
        for name in self.names:
            runs = [optimizer.state.get(self.per_run[k][name], {}) for k, optimizer in enumerate(optimizers)]
            if not runs[0]:
                continue
            state = {}
            for key, value in runs[0].items():
                if torch.is_tensor(value) and value.shape == self.per_run[0][name].shape:
                    state[key] = torch.stack([run[key] for run in runs])
                else:
                    state[key] = value.clone() if torch.is_tensor(value) else value
            self.optimizer.state[self.params[name]] = state
        for optimizer in optimizers:
            optimizer.state = defaultdict(dict)  # refilled from the stacked state at each checkpoint

    # ------------------------------------------------------------------ the Step interface
    def prune(self, epoch: int, alive: list[bool]) -> None:
        """Each live run computes its masks on its own slice (and zeroes it); then stack them."""
        for k, trainer in enumerate(self.trainers):
            if alive[k]:
                trainer.prune(epoch)
        pruners = [t.pruner for t in self.trainers]
        names = next((list(p.masks) for p in pruners if p is not None), [])
        self.masks = {}
        for name in names:
            ones = torch.ones_like(self.per_run[0][name], dtype=torch.bool)
            self.masks[name] = torch.stack([
                p.masks[name].to(self.device) if p is not None and alive[k] else ones
                for k, p in enumerate(pruners)
            ])
        if self.masks:
            with torch.no_grad():
                apply_masks_(self.params, self.masks)

    def __call__(self, alive: list[bool], will_log: bool) -> list[StepResult]:
        cfg = self.cfg
        losses = self.losses()
        penalties = self._penalties()
        total = losses.float() + penalties
        results: list[StepResult] = [None] * self.k
        for k, ok in enumerate(torch.isfinite(total).tolist()):
            if alive[k] and not ok:
                alive[k] = False
                results[k] = DivergenceError(
                    f"the loss became {float(total[k].detach())} at step {self.step}; the learning rate "
                    f"(optim.lr = {cfg.optim.lr:g}) is probably too high, or the regulariser strength too large"
                )
        # the penalties logged are each run's own (a dot product), computed before the update
        logged = [float(t.model.penalty().detach()) for t in self.trainers] if will_log else [None] * self.k
        self.optimizer.zero_grad(set_to_none=True)
        if all(alive):
            total.sum().backward()
        else:  # diverged runs get no gradient (their NaNs stay in their own slices)
            mask = torch.tensor(alive, device=total.device)
            torch.where(mask, total, torch.zeros_like(total)).sum().backward()
        for name, mask in self.masks.items():
            grad = self.params[name].grad
            if grad is not None:
                grad.masked_fill_(~mask, 0)
        if cfg.optim.grad_clip is not None:
            self._clip(cfg.optim.grad_clip)
        self.optimizer.step()
        if self.masks:
            with torch.no_grad():
                apply_masks_(self.params, self.masks)
        self.step += 1
        for trainer in self.trainers:
            trainer.step = self.step
        values = losses.detach().tolist()
        return [
            (values[k], logged[k]) if alive[k] else results[k] for k in range(self.k)
        ]

    def state(self, k: int, epoch: int) -> dict[str, Any]:
        """Run ``k``'s checkpoint: its slice of the stacked optimiser state in its own optimiser."""
        trainer = self.trainers[k]
        optimizer = trainer.optimizer
        optimizer.state = defaultdict(dict)
        for name in self.names:
            stacked = self.params[name]
            state = self.optimizer.state.get(stacked)
            if state:
                optimizer.state[self.per_run[k][name]] = {
                    key: value[k] if torch.is_tensor(value) and value.shape == stacked.shape
                    else (value.clone() if torch.is_tensor(value) else value)
                    for key, value in state.items()
                }
        state = trainer.state(epoch)
        optimizer.state = defaultdict(dict)
        state["torch_rng"] = self.rng_states[k]
        return _clone_tensors(state)

    # ------------------------------------------------------------------ one step
    def losses(self) -> Tensor:
        """(K,) training losses of one fresh batch per run, as the unbatched tasks compute them."""
        return self.task.stacked_losses([t.task for t in self.trainers], self.params)

    def _penalties(self) -> Tensor:
        """(K,) moduli penalties of the stacked W_hh (gradients equal the unbatched ones)."""
        w = self.params["rnn.weight_hh_l0"]
        if self.regularizer is None:
            return w.new_zeros(self.k)
        reg = self.regularizer
        magnitude = w.abs() if reg.exponent == 1 else w.square()
        total = (self.coefficients.to(dtype=w.dtype) * magnitude).sum(dim=(1, 2))
        if reg.reduction == "mean":
            total = total / (reg.num_neurons * reg.num_neurons)
        return reg.strength * total

    def _clip(self, max_norm: float) -> None:
        """Scale each run's gradients by min(1, max_norm / (its own total norm + 1e-6))."""
        grads = [self.params[n].grad for n in self.names]
        slices = [g for grad in grads for g in grad.unbind(0)]  # per parameter, per run
        norms = torch.stack(torch._foreach_norm(slices, 2.0)).view(len(grads), self.k).t().contiguous()
        totals = torch.stack([torch.linalg.vector_norm(row, 2.0) for row in norms])  # as clip_grad_norm_
        coef = torch.clamp(max_norm / (totals + 1e-6), max=1.0)
        for grad in grads:
            grad.mul_(coef.view(-1, *([1] * (grad.dim() - 1))))

    # ------------------------------------------------------------------ the group
    def run(self) -> list[Outcome]:
        """Train the K runs with the one loop; write each finished run's summary."""
        outcomes = fit(self.trainers, self, self.quiet)
        for trainer, outcome in zip(self.trainers, outcomes):
            if isinstance(outcome, dict):
                outcome["batched_runs"] = self.k
                trainer.run_dir.write_summary(outcome)
        return outcomes


def _sequential(cfgs: Sequence[RunConfig], quiet: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for cfg in cfgs:
        try:
            outcomes.append(run_config(cfg, quiet))  # its lock is already held by this process
        except Exception as error:  # run_config has marked the run failed
            outcomes.append(error)
    return outcomes


def train_batched(cfgs: Sequence[RunConfig], quiet: bool = False, *, wait: bool = False) -> list[Outcome]:
    """Train (or resume, or read back) runs that differ only in their seed, as one batched model.

    Args:
        cfgs: K configs equal except for ``train.seed`` / ``train.replicate`` (distinct runs), all
            supported (see :func:`unsupported_reason`).
        quiet: no progress bar.
        wait: wait for run directories that another process is training (else that run's outcome
            is a RunLockedError and the others train).

    Returns:
        One outcome per config, in order: the run's summary (as ``run_config`` returns it), or the
        exception that ended it (the run is then marked failed in its directory). Finished runs
        are read back; a single unfinished run, or unfinished runs interrupted at different
        epochs, are trained one after the other with ``run_config``.
    """
    if isinstance(cfgs, RunConfig) or not isinstance(cfgs, Sequence) or len(cfgs) == 0:
        raise TypeError("cfgs must be a non-empty list of RunConfig (one per seed)")
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, RunConfig):
            raise TypeError(f"cfgs[{i}] must be a RunConfig, got {type(cfg).__name__}")
        reason = unsupported_reason(cfg)
        if reason is not None:
            raise ValueError(f"cfgs[{i}] cannot be trained batched ({reason}); train it with run_config")
    if len({_group_key(c) for c in cfgs}) > 1:
        raise ValueError("the configs differ in more than train.seed / train.replicate; group them with seed_groups")
    if len({config_hash(c) for c in cfgs}) < len(cfgs):
        raise ValueError("two configs describe the same run (same seed and replicate); pass each run once")
    run_dirs = [RunDir.checked(cfg) for cfg in cfgs]
    outcomes: list[Outcome | None] = [run.summary() if run.is_finished else None for run in run_dirs]
    with ExitStack() as locks:
        todo = []
        for i, outcome in enumerate(outcomes):
            if outcome is not None:
                continue
            try:
                locks.enter_context(RunLock(run_dirs[i].path, wait=wait, quiet=quiet))
            except RunLockedError as error:
                outcomes[i] = error
                continue
            if run_dirs[i].is_finished:  # finished by the process this one waited for
                outcomes[i] = run_dirs[i].summary()
                continue
            run_dirs[i].start()
            todo.append(i)
        if len(todo) == 1:
            outcomes[todo[0]] = _sequential([cfgs[todo[0]]], quiet)[0]
        elif todo:
            group: StackedSeeds | None = None
            try:
                group = StackedSeeds([cfgs[i] for i in todo], [run_dirs[i] for i in todo], quiet)
                results = group.run() if group.aligned else _sequential([cfgs[i] for i in todo], quiet)
            except KeyboardInterrupt as interrupt:  # SIGINT / SIGTERM: every unfinished run keeps its checkpoint
                step = group.step if group is not None and group.aligned else None
                for i in todo:
                    if not run_dirs[i].is_finished and run_dirs[i].status != "interrupted":
                        run_dirs[i].mark_interrupted(interrupted_text(interrupt, run_dirs[i], step))
                raise
            except Exception as error:
                for i in todo:
                    run_dirs[i].mark_failed(error)
                results = [error] * len(todo)
            for i, result in zip(todo, results):
                outcomes[i] = result
    return outcomes  # type: ignore[return-value]
