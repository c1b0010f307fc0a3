"""Train K runs that differ only in their seed as one batched model.

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

Supported: the ``adding`` and ``navigation`` tasks (every place-cell tuning, velocity unit and
W_hh initialisation: the inputs and targets come from each run's own task); regulariser ``none``/``moduli``/``l1``/
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
import time
from collections import defaultdict
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..config import RunConfig, config_hash
from ..pruning.masks import apply_masks_
from ..run_dir import RunDir
from .builders import build_optimizers
from .loop import DivergenceError, Trainer, run_config

__all__ = ["seed_groups", "stacked_elman", "train_batched", "unsupported_reason"]

Outcome = dict[str, Any] | Exception  # a run's summary, or the error that ended it


def unsupported_reason(cfg: RunConfig) -> str | None:
    """Why ``cfg`` cannot be trained batched (one short phrase), or None if it can."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"cfg must be a RunConfig (from moduli.config.load_config), got {type(cfg).__name__}")
    checks = [
        (cfg.task not in ("adding", "navigation"), f"task {cfg.task!r} (only adding and navigation are batched)"),
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


def stacked_elman(
    x: Tensor,
    h0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    nonlinearity: str,
) -> Tensor:
    """K independent Elman layers: x (K, T, B, I), h0 (K, B, N) or None, w_ih (K, N, I),
    w_hh (K, N, N), b_ih / b_hh (K, N) or None -> all hidden states (K, T, B, N).

    The operations mirror torch's own CPU RNN loop (input projections of all steps first, then
    ``phi(h W_hh^T + b_hh + pre_t)`` per step), so on CPU every slice equals the unbatched run.
    """
    if nonlinearity not in ("relu", "tanh"):
        raise ValueError(f"nonlinearity must be 'relu' or 'tanh', got {nonlinearity!r}")
    if x.dim() != 4 or w_ih.dim() != 3 or w_hh.dim() != 3 or x.shape[0] != w_ih.shape[0]:
        raise ValueError(
            f"expected x (K, T, B, I), w_ih (K, N, I), w_hh (K, N, N); got {tuple(x.shape)}, "
            f"{tuple(w_ih.shape)}, {tuple(w_hh.shape)}"
        )
    k, steps, batch, features = x.shape
    hidden = w_hh.shape[-1]
    flat = x.reshape(k, steps * batch, features)
    if b_ih is not None:
        pre = torch.baddbmm(b_ih.unsqueeze(1), flat, w_ih.transpose(1, 2))
    else:
        pre = torch.bmm(flat, w_ih.transpose(1, 2))
    # unbind (as torch's loop does), not pre[:, t]: the backward of T selects would add T
    # zero-filled (K, T, B, N) gradients
    pre = pre.view(k, steps, batch, hidden).unbind(1)
    phi = torch.relu if nonlinearity == "relu" else torch.tanh
    h = x.new_zeros(k, batch, hidden) if h0 is None else h0
    states = []
    for t in range(steps):
        # transpose inside the loop, as torch's linear does: the T gradient contributions then
        # reach W_hh in the same order as in an unbatched run
        if b_hh is not None:
            hh = torch.baddbmm(b_hh.unsqueeze(1), h, w_hh.transpose(1, 2))
        else:
            hh = torch.bmm(h, w_hh.transpose(1, 2))
        h = phi(hh.add_(pre[t]))
        states.append(h)
    return torch.stack(states, 1)


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


class _BatchedGroup:
    """K Trainers whose weights live in stacked tensors, trained together."""

    def __init__(self, cfgs: Sequence[RunConfig], run_dirs: Sequence[RunDir], quiet: bool) -> None:
        self.cfg, self.quiet, self.k = cfgs[0], quiet, len(cfgs)
        self.trainers: list[Trainer] = []  # one per run: its task, data, masks, history, files
        self.rng_states: list[Tensor] = []  # each run's global CPU RNG state, as its own run keeps it
        for cfg, run_dir in zip(cfgs, run_dirs):
            trainer = Trainer(cfg, run_dir, quiet=True)
            trainer._resume()
            self.trainers.append(trainer)
            self.rng_states.append(torch.get_rng_state())
        first = self.trainers[0]
        self.aligned = all((t.start_epoch, t.step) == (first.start_epoch, first.step) for t in self.trainers)
        if not self.aligned:
            return
        self.device, self.step, self.start_epoch = first.device, first.step, first.start_epoch
        # the pruning schedule's epochs, then the stabilising epochs under the final mask
        self.epochs, self.steps_per_epoch, self.schedule = first.first_phase, first.steps_per_epoch, first.schedule
        self.alive = [True] * self.k  # False once a run diverged
        self.errors: list[Exception | None] = [None] * self.k
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

    def _per_run_optimizer_state(self, k: int) -> None:
        """Put run ``k``'s slice of the stacked optimiser state into its own optimiser."""
        optimizer = self.trainers[k].optimizer
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

    # ------------------------------------------------------------------ pruning
    def _prune(self, epoch: int) -> None:
        """Each live run computes its masks on its own slice (and zeroes it); then stack them."""
        for k, trainer in enumerate(self.trainers):
            if self.alive[k]:
                trainer._prune(epoch)
        pruners = [t.pruner for t in self.trainers]
        names = next((list(p.masks) for p in pruners if p is not None), [])
        self.masks = {}
        for name in names:
            ones = torch.ones_like(self.per_run[0][name], dtype=torch.bool)
            self.masks[name] = torch.stack([
                p.masks[name].to(self.device) if p is not None and self.alive[k] else ones
                for k, p in enumerate(pruners)
            ])
        if self.masks:
            with torch.no_grad():
                apply_masks_(self.params, self.masks)

    # ------------------------------------------------------------------ one step
    def _batch(self) -> tuple[Tensor, ...]:
        """Each run's training batch from its own generator, stacked on a leading K axis."""
        tasks = [t.task for t in self.trainers]
        if self.cfg.task == "adding":
            pairs = [task.problem.sample(task.batch_size, generator=task.generator, device=task.device) for task in tasks]
            return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        # each run's inputs and targets as its own task makes them (tuning, velocity units)
        runs = [
            task.model_inputs(task.trajectories.sample(task.batch_size, generator=task.generator, device=task.device))
            for task in tasks
        ]
        return tuple(torch.stack(parts) for parts in zip(*runs))

    def _losses(self) -> Tensor:
        """(K,) training losses of one fresh batch per run, as the unbatched tasks compute them."""
        p, nonlinearity = self.params, self.cfg.model.nonlinearity
        if self.cfg.task == "adding":
            inputs, target = self._batch()
            states = stacked_elman(
                inputs, None, p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"], p.get("rnn.bias_ih_l0"),
                p.get("rnn.bias_hh_l0"), nonlinearity,
            )
            last, weight, bias = states[:, -1], p["readout.weight"], p["readout.bias"]
            # (B, N) x (N, 1) per run: small enough that batched products would take torch's
            # naive CPU kernel (other rounding than mm), so one F.linear per run, as unbatched
            prediction = torch.stack([nn.functional.linear(last[k], weight[k], bias[k]) for k in range(self.k)])
            return ((prediction - target) ** 2).mean(dim=(1, 2))
        velocity, start, target = self._batch()
        h0 = torch.bmm(start, p["encoder.weight"].transpose(1, 2))
        states = stacked_elman(
            velocity, h0, p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"], p.get("rnn.bias_ih_l0"), p.get("rnn.bias_hh_l0"),
            nonlinearity,
        )
        k, steps, batch, hidden = states.shape
        logits = torch.bmm(states.reshape(k, steps * batch, hidden), p["decoder.weight"].transpose(1, 2))
        logits = logits.view(k, steps, batch, -1)
        return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean(dim=(1, 2))

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

    def _train_step(self, will_log: bool) -> tuple[list[float], list[float] | None]:
        cfg = self.cfg
        losses = self._losses()
        penalties = self._penalties()
        total = losses.float() + penalties
        finite = torch.isfinite(total).tolist()
        for k, ok in enumerate(finite):
            if self.alive[k] and not ok:
                self._diverged(k, float(total[k].detach()))
        # the penalties logged are each run's own (a dot product), computed before the update
        logged = [float(t.model.penalty().detach()) for t in self.trainers] if will_log else None
        self.optimizer.zero_grad(set_to_none=True)
        if all(self.alive):
            total.sum().backward()
        else:  # diverged runs get no gradient (their NaNs stay in their own slices)
            alive = torch.tensor(self.alive, device=total.device)
            torch.where(alive, total, torch.zeros_like(total)).sum().backward()
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
        return losses.detach().tolist(), logged

    def _diverged(self, k: int, value: float) -> None:
        error = DivergenceError(
            f"the loss became {value} at step {self.step}; the learning rate "
            f"(optim.lr = {self.cfg.optim.lr:g}) is probably too high, or the regulariser strength too large"
        )
        self.alive[k], self.errors[k] = False, error
        self.trainers[k].run_dir.mark_failed(error)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, k: int, epoch: int) -> None:
        trainer = self.trainers[k]
        self._per_run_optimizer_state(k)
        state = trainer._state(epoch)
        trainer.optimizer.state = defaultdict(dict)
        state["torch_rng"] = self.rng_states[k]
        trainer.run_dir.save_checkpoint(_clone_tensors(state))

    # ------------------------------------------------------------------ the group
    def run(self) -> list[Outcome]:
        cfg = self.cfg
        started = time.perf_counter()
        total_steps = self.epochs * self.steps_per_epoch
        bar = tqdm(
            total=total_steps, initial=self.start_epoch * self.steps_per_epoch,
            disable=not (sys.stderr.isatty() and not self.quiet), dynamic_ncols=True, desc=f"{cfg.task} x{self.k}",
        )
        for epoch in range(self.start_epoch, self.epochs):
            self._prune(epoch)
            for trainer in self.trainers:
                trainer.task.start_epoch()
                trainer.model.train()
            epoch_start, windows = time.perf_counter(), [[] for _ in range(self.k)]
            for i in range(self.steps_per_epoch):
                last = i == self.steps_per_epoch - 1
                will_log = (self.step + 1) % cfg.train.log_every == 0 or last
                losses, penalties = self._train_step(will_log)
                for k in range(self.k):
                    windows[k].append(losses[k])
                if will_log:
                    rate = (i + 1) / (time.perf_counter() - epoch_start)
                    for k, trainer in enumerate(self.trainers):
                        if self.alive[k]:
                            trainer.run_dir.log_metrics({
                                "step": self.step, "epoch": epoch, "split": "train",
                                "loss": sum(windows[k]) / len(windows[k]), "penalty": penalties[k],
                                "lr": self.optimizer.param_groups[0]["lr"],
                                "sparsity": trainer._global_sparsity(), "steps_per_s": rate,
                            })
                    windows = [[] for _ in range(self.k)]
                bar.update(1)
            for k, trainer in enumerate(self.trainers):
                if not self.alive[k]:
                    continue
                trainer.step = self.step
                trainer.model.eval()
                metrics = trainer.task.evaluate("valid")
                trainer.model.train()
                trainer.history["final"] = metrics
                trainer.run_dir.log_metrics({"step": self.step, "epoch": epoch, "split": "valid", **metrics,
                                             "sparsity": trainer._global_sparsity()})
                if (epoch + 1) % cfg.train.checkpoint_every == 0 or epoch == self.epochs - 1:
                    self._checkpoint(k, epoch)
            if not any(self.alive):
                break
        bar.close()
        wall = time.perf_counter() - started
        outcomes: list[Outcome] = []
        for k, trainer in enumerate(self.trainers):
            if not self.alive[k]:
                outcomes.append(self.errors[k])
                continue
            summary = trainer._summary(wall)
            summary["batched_runs"] = self.k
            trainer.run_dir.write_summary(summary)
            outcomes.append(summary)
        return outcomes


def _sequential(cfgs: Sequence[RunConfig], quiet: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for cfg in cfgs:
        try:
            outcomes.append(run_config(cfg, quiet))
        except Exception as error:  # run_config has marked the run failed
            outcomes.append(error)
    return outcomes


def train_batched(cfgs: Sequence[RunConfig], quiet: bool = False) -> list[Outcome]:
    """Train (or resume, or read back) runs that differ only in their seed, as one batched model.

    Args:
        cfgs: K configs equal except for ``train.seed`` / ``train.replicate`` (distinct runs), all
            supported (see :func:`unsupported_reason`).
        quiet: no progress bar.

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
    run_dirs = [RunDir.create(cfg) for cfg in cfgs]
    outcomes: list[Outcome | None] = [run.summary() if run.is_finished else None for run in run_dirs]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if len(todo) == 1:
        outcomes[todo[0]] = _sequential([cfgs[todo[0]]], quiet)[0]
    elif todo:
        try:
            group = _BatchedGroup([cfgs[i] for i in todo], [run_dirs[i] for i in todo], quiet)
            results = group.run() if group.aligned else _sequential([cfgs[i] for i in todo], quiet)
        except Exception as error:
            for i in todo:
                run_dirs[i].mark_failed(error)
            results = [error] * len(todo)
        for i, result in zip(todo, results):
            outcomes[i] = result
    return outcomes  # type: ignore[return-value]
