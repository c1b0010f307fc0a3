"""The training loop: configs in, run directories and summaries out.

A :class:`Trainer` holds one run (task, model, optimisers, pruning masks, history, run directory)
and everything done to it alone. :func:`fit` is the one loop, read top to bottom: epochs of
(prune to the scheduled sparsity, train ``steps_per_epoch`` batches, then per run: check the
weights, evaluate, step the lr schedule, log, checkpoint), then ``train.stabilise_epochs`` more
epochs under the final mask with learned neuron positions frozen, then the summaries. With
``pruning.lottery`` a last phase re-initialises the weights, keeps the final mask fixed and
retrains for ``train.epochs`` epochs, on a fresh neuron embedding or on the trained model's
(``pruning.lottery_embedding``).

How the runs take a step is a :class:`Step`: :class:`SingleStep` trains one run on its own;
:class:`moduli.training.batched.StackedSeeds` trains K runs that differ only in their seed as one
batched model. Everything else (evaluation, logging, checkpoints, divergence, the progress bar)
is the same code for both.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Any, Protocol, Sequence

import torch

from ..config.schema import RunConfig
from ..atomic import atomic_torch_save
from ..errors import RunFailedError, StorageError
from ..models.elman_stack import RegularizerFactory
from ..pruning import Pruner, lottery_reset, sparsity_report
from ..run_dir import RunDir
from ..run_lock import RunLock
from .builders import (
    build_lr_scheduler,
    build_optimizers,
    build_pruning_schedule,
    compute_masks,
    frozen_regularizers,
    named_weights,
    regularizer_factory,
    resolve_device,
)
from ..tasks.registry import build_task, task_class
from .progress import Progress, announce_long_run

LOTTERY_SEED_OFFSET = 104_729  # the re-initialised model's fresh weights and embedding

Outcome = dict[str, Any] | Exception  # a run's summary, or the error that ended it


class DivergenceError(RunFailedError):
    """The loss or the weights became NaN or infinite (the command line exits with status 1)."""


class Trainer:
    """Trains one run described by ``cfg`` into ``run_dir``."""

    def __init__(self, cfg: RunConfig, run_dir: RunDir, quiet: bool = False) -> None:
        self.cfg, self.run_dir, self.quiet = cfg, run_dir, quiet
        self.device = resolve_device(cfg.train.device)
        self.seed = cfg.train.effective_seed
        torch.manual_seed(self.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        self._build(self.seed)
        self.epochs = cfg.train.epochs  # epochs of the pruning schedule
        self.first_phase = self.epochs + cfg.train.stabilise_epochs  # ... and the stabilising epochs
        self.total_epochs = self.first_phase + (self.epochs if cfg.pruning.lottery else 0)
        self.steps_per_epoch = self.task.steps_per_epoch(cfg.train.steps_per_epoch)
        self.schedule = build_pruning_schedule(cfg.pruning, self.epochs)
        names = list(cfg.pruning.parameters) if cfg.pruning.parameters else self.model.prunable_names()
        self.pruned_weights = named_weights(self.model, names)
        self.pruner: Pruner | None = None
        self.mask_generator = torch.Generator().manual_seed(self.seed)
        self.step, self.start_epoch, self.history = 0, 0, {}
        self.epoch = 0  # the epoch being trained

    # ------------------------------------------------------------------ set-up
    def _build(self, seed: int, regularizers: RegularizerFactory | None = None) -> None:
        """Task, model, optimisers and schedule; ``regularizers`` replaces the configured factory."""
        cfg = self.cfg
        factory = regularizers if regularizers is not None else regularizer_factory(cfg.regularizer, seed)
        self.task = build_task(cfg, self.device, seed, factory)
        self.model = self.task.model
        self.optimizer, self.embedding_optimizer = build_optimizers(
            cfg.optim, self.model, cfg.regularizer.embedding_lr, cfg.regularizer.embedding_optimizer,
            structure=type(self.task).modular_structure,
        )
        self.lr_scheduler = build_lr_scheduler(cfg.optim, self.optimizer)

    def _coefficients(self) -> dict[str, torch.Tensor]:
        """Recurrent matrices' coefficient matrices (for moduli pruning)."""
        regs = self.model.rnn.regularizers
        if regs is None:
            return {}
        return {
            f"rnn.weight_hh_l{layer}": reg.coefficients().detach()
            for layer, reg in enumerate(regs)
            if f"rnn.weight_hh_l{layer}" in self.pruned_weights
        }

    # ------------------------------------------------------------------ pruning
    def prune(self, epoch: int) -> None:
        """Masks at the scheduled sparsity of ``epoch`` (none for a dense run or in the lottery phase)."""
        if self.schedule is None or epoch >= self.epochs:
            return  # dense run, or the lottery phase (its mask is fixed)
        sparsity = self.schedule.sparsity_at(epoch)
        previous = self.pruner.masks if self.pruner is not None else None
        if sparsity == 0.0 and previous is None:
            return
        masks = compute_masks(
            self.cfg.pruning, self.pruned_weights, sparsity, previous, self._coefficients(), self.mask_generator
        )
        if self.pruner is None:
            self.pruner = Pruner(self.model, masks)
            self.pruner.attach(self.optimizer)
        else:
            self.pruner.update(masks)

    def start_lottery_phase(self) -> None:
        """Fresh weights, same mask, fresh optimiser state; a fresh embedding or the trained
        model's (fixed), and the lr schedule restarted with or without its best validation loss."""
        masks = {name: mask.clone() for name, mask in self.pruner.masks.items()}
        self.pruner.detach()
        reused = frozen_regularizers(self.model) if self.cfg.pruning.lottery_embedding == "reuse" else None
        best = self.lr_scheduler.best if self.lr_scheduler is not None else None
        torch.manual_seed(self.seed + LOTTERY_SEED_OFFSET)
        self._build(self.seed + LOTTERY_SEED_OFFSET, reused)
        if self.lr_scheduler is not None and self.cfg.pruning.lottery_schedule == "keep_best":
            self.lr_scheduler.best = best  # the lr starts at optim.lr and falls until this loss is beaten
        names = list(self.pruned_weights)
        self.pruned_weights = named_weights(self.model, names)
        lottery_reset(self.model, masks, generator=torch.Generator().manual_seed(self.seed + LOTTERY_SEED_OFFSET))
        self.pruner = Pruner(self.model, masks)
        self.pruner.attach(self.optimizer)

    # ------------------------------------------------------------------ one step
    def _learned_positions(self, epoch: int) -> list[torch.nn.Parameter]:
        """Learned positions that this step updates, their gradients scaled by
        ``embedding_grad_decay ** (epoch within the phase)``; during the stabilising epochs their
        gradients are dropped (positions frozen) and the list is empty."""
        positions = self.model.embedding_parameters()
        if not positions:
            return []
        if self.epochs <= epoch < self.first_phase:
            for p in positions:
                p.grad = None
            return []
        phase_epoch = epoch if epoch < self.first_phase else epoch - self.first_phase  # lottery: its own count
        decay = self.cfg.regularizer.embedding_grad_decay**phase_epoch
        if decay != 1.0:
            for p in positions:
                if p.grad is not None:
                    p.grad.mul_(decay)
        return positions

    def _project_positions(self) -> None:
        """After a plain optimiser step: every learned position back to its manifold's canonical point."""
        with torch.no_grad():
            for reg in self.model.rnn.regularizers or ():
                if reg.learn_embedding:
                    reg.embedding.copy_(reg.manifold.project(reg.embedding))

    def train_step(self) -> tuple[float, float]:
        """One optimiser step of epoch ``self.epoch``: (training loss, penalty before the step)."""
        cfg = self.cfg
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if cfg.train.precision == "bf16" else nullcontext()
        )
        with autocast:
            loss, _ = self.task.train_loss()
        penalty = self.model.penalty()
        if cfg.regularizer.extra_l1 > 0 and hasattr(self.model, "input_weights"):
            penalty = penalty + cfg.regularizer.extra_l1 * sum(w.abs().mean() for w in self.model.input_weights())
        total = loss.float() + penalty
        if not torch.isfinite(total):
            raise DivergenceError(
                f"the loss became {float(total.detach())} at step {self.step}; the learning rate "
                f"(optim.lr = {cfg.optim.lr:g}) is probably too high, or the regulariser strength too large"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.embedding_optimizer is not None:
            self.embedding_optimizer.zero_grad(set_to_none=True)
        total.backward()
        positions = self._learned_positions(self.epoch)
        shared = cfg.regularizer.embedding_optimizer == "shared"
        if cfg.optim.grad_clip is not None:
            clipped = self.model.weight_parameters() + (positions if shared else [])
            torch.nn.utils.clip_grad_norm_(clipped, cfg.optim.grad_clip)
        self.optimizer.step()
        if self.embedding_optimizer is not None:
            self.embedding_optimizer.step()
        if shared and positions:
            self._project_positions()
        self.step += 1
        return float(loss.detach()), float(penalty.detach())

    # ------------------------------------------------------------------ checkpoints
    def state(self, epoch: int) -> dict[str, Any]:
        """What the checkpoint of ``epoch`` holds."""
        return {
            "epoch": epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "embedding_optimizer": None if self.embedding_optimizer is None else self.embedding_optimizer.state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "pruner": None if self.pruner is None else self.pruner.state_dict(),
            "task": self.task.state_dict(),
            "mask_generator": self.mask_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
        }

    def resume(self) -> None:
        """Continue from the run directory's last checkpoint, if any."""
        state = self.run_dir.resume(map_location=self.device)  # also drops metrics logged after it
        if state is None:
            return
        epoch = state["epoch"]
        if self.cfg.pruning.lottery and epoch >= self.first_phase:
            self.pruner = Pruner(self.model, state["pruner"]["masks"])  # rebuilt below with the mask
            self.start_lottery_phase()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.embedding_optimizer is not None:
            self.embedding_optimizer.load_state_dict(state["embedding_optimizer"])
            # RiemannianAdam inherits Adam.__setstate__, which turns its int "step" into a float32
            # tensor on load; its bias corrections would then be computed in float32 instead of
            # float64 and a resumed run would drift from an uninterrupted one.
            for param_state in self.embedding_optimizer.state.values():
                if torch.is_tensor(param_state.get("step")):
                    param_state["step"] = int(param_state["step"].item())
        if self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if state["pruner"] is not None:
            if self.pruner is None:
                self.pruner = Pruner(self.model, state["pruner"]["masks"])
                self.pruner.attach(self.optimizer)
            self.pruner.load_state_dict(state["pruner"])
        self.task.load_state_dict(state["task"])
        self.mask_generator.set_state(state["mask_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.start_epoch, self.history = state["step"], epoch + 1, state["history"]
        if not self.quiet:
            print(f"{self.run_dir.path}: resuming from step {self.step} (epoch {self.start_epoch} of "
                  f"{self.total_epochs} done)", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ the end of an epoch
    def check_finite_weights(self) -> None:
        """Raise DivergenceError if a weight became NaN or infinite (the last good checkpoint stays)."""
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DivergenceError(
                    f"the weights ({name}) became NaN or infinite at step {self.step}; the learning rate "
                    f"(optim.lr = {self.cfg.optim.lr:g}) is probably too high, or the regulariser strength too large"
                )

    def validate(self, epoch: int) -> dict[str, float]:
        """Evaluate on the validation split, step the lr schedule, record and log the metrics."""
        self.model.eval()
        metrics = self.task.evaluate("valid")
        self.model.train()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step(metrics["loss"])
        self.history["final"] = metrics
        self.run_dir.log_metrics({"step": self.step, "epoch": epoch, "split": "valid", **metrics,
                                  "sparsity": self.sparsity()})
        return metrics

    def snapshot_embeddings(self, epoch: int) -> None:
        """Learned neuron positions at the end of ``epoch``: ``embeddings/epoch_XXXX.pt`` ({layer: (N, c)})."""
        regs = self.model.rnn.regularizers
        if regs is None or not any(reg.learn_embedding for reg in regs):
            return
        points = {str(layer): reg.embedding.detach().cpu().clone() for layer, reg in enumerate(regs)}
        atomic_torch_save(points, self.run_dir.embedding_snapshot_path(epoch))

    def sparsity(self) -> float:
        """Fraction of the pruned matrices' entries that are masked."""
        return sparsity_report(self.pruned_weights, self.pruner.masks if self.pruner else None).sparsity

    def test_metrics(self) -> dict[str, Any]:
        """``{"test": metrics}`` of the current model on the task's test split, ``{}`` without one
        (navigation and adding draw fresh evaluation data)."""
        return self.task.test_metrics()

    def summary(self, wall_time: float) -> dict[str, Any]:
        """The run's results (``summary.json``)."""
        final = self.history["final"]
        summary: dict[str, Any] = {
            "task": self.cfg.task,
            "metric": self.task.metric,
            "value": final[self.task.metric],
            "valid": final,
            "sparsity": self.sparsity(),
            "per_matrix_sparsity": {
                row.name: row.sparsity
                for row in sparsity_report(self.pruned_weights, self.pruner.masks if self.pruner else None).matrices
            },
            "sparsity_denominator": sparsity_report(self.pruned_weights).denominator,
            "steps": self.step,
            "wall_time_s": wall_time,
            "device": str(self.device),
        }
        summary.update(self.test_metrics())
        summary.update(self.task.summary_extras())
        if self.cfg.pruning.lottery and "pruned" in self.history:
            summary["pruned_model"] = self.history["pruned"]
        return summary

    def run(self) -> dict[str, Any]:
        """Resume if possible, train to the end, return the summary (raises what ended the run)."""
        self.resume()
        if not self.quiet:
            total = self.total_epochs * self.steps_per_epoch
            announce_long_run(self.cfg, self.device, total - self.start_epoch * self.steps_per_epoch, total)
        (outcome,) = fit([self], SingleStep(self), self.quiet)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


StepResult = tuple[float, "float | None"] | DivergenceError | None  # (loss, penalty), what ended the run, or dead


class Step(Protocol):
    """How the runs of one :func:`fit` take their training steps."""

    def prune(self, epoch: int, alive: list[bool]) -> None:
        """Masks of ``epoch`` for the live runs."""

    def __call__(self, alive: list[bool], will_log: bool) -> list[StepResult]:
        """One optimiser step of every live run: (training loss, penalty before the step; None
        unless ``will_log``), or the DivergenceError of a run whose loss became NaN or infinite
        (the step sets its ``alive`` entry to False), or None for a run that was dead already."""

    def state(self, k: int, epoch: int) -> dict[str, Any]:
        """The checkpoint of run ``k`` at the end of ``epoch``."""


class SingleStep:
    """One run trains on its own (the plain case)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def prune(self, epoch: int, alive: list[bool]) -> None:
        self.trainer.prune(epoch)

    def __call__(self, alive: list[bool], will_log: bool) -> list[StepResult]:
        try:
            return [self.trainer.train_step()]
        except DivergenceError as error:
            alive[0] = False
            return [error]

    def state(self, k: int, epoch: int) -> dict[str, Any]:
        return self.trainer.state(epoch)


def fit(trainers: Sequence[Trainer], step: Step, quiet: bool = False) -> list[Outcome]:
    """Train ``trainers`` (resumed at the same epoch and step, same schedule) to the end with ``step``.

    Returns one outcome per run: its summary, or the DivergenceError that ended it (that run is
    marked failed in its directory; the others go on). Any other error propagates.
    """
    first, k = trainers[0], len(trainers)
    cfg = first.cfg
    started = time.perf_counter()
    bar = Progress(
        first.total_epochs * first.steps_per_epoch, first.start_epoch * first.steps_per_epoch,
        cfg.task if k == 1 else f"{cfg.task} x{k}", quiet, first.total_epochs, first.steps_per_epoch,
    )
    alive, errors = [True] * k, [None] * k

    def failed(i: int, error: Exception) -> None:
        alive[i], errors[i] = False, error
        trainers[i].run_dir.mark_failed(error)

    for epoch in range(first.start_epoch, first.total_epochs):
        live = [t for t, ok in zip(trainers, alive) if ok]
        for t in live:
            if t.cfg.pruning.lottery and epoch == t.first_phase:
                t.history["pruned"] = {**t.history["final"], **t.test_metrics()}
                t.start_lottery_phase()
            t.epoch = epoch
        step.prune(epoch, alive)
        for t in live:
            t.task.start_epoch()
            t.model.train()
        epoch_start, windows = time.perf_counter(), [[] for _ in trainers]
        for i in range(first.steps_per_epoch):
            last = i == first.steps_per_epoch - 1
            will_log = (first.step + 1) % cfg.train.log_every == 0 or last
            results = step(alive, will_log)
            for j, (t, result) in enumerate(zip(trainers, results)):
                if isinstance(result, DivergenceError):
                    failed(j, result)
                elif result is not None:
                    windows[j].append(result[0])
            if will_log:
                rate = (i + 1) / (time.perf_counter() - epoch_start)
                for j, (t, result) in enumerate(zip(trainers, results)):
                    if alive[j]:
                        record = {"step": t.step, "epoch": epoch, "split": "train",
                                  "loss": sum(windows[j]) / len(windows[j]), "penalty": result[1],
                                  "lr": t.optimizer.param_groups[0]["lr"], "sparsity": t.sparsity(), "steps_per_s": rate}
                        t.run_dir.log_metrics(record)
                        bar.set_postfix({"loss": f"{record['loss']:.4g}", "sparsity": f"{record['sparsity']:.2f}"})
                windows = [[] for _ in trainers]
            bar.update(1)
            if not any(alive):
                break
        for j, t in enumerate(trainers):
            if not alive[j]:
                continue
            try:
                t.check_finite_weights()  # before anything of this epoch is evaluated or saved
            except DivergenceError as error:
                failed(j, error)
                continue
            metrics = t.validate(epoch)
            bar.set_postfix({t.task.metric: f"{metrics[t.task.metric]:.4g}", "sparsity": f"{t.sparsity():.2f}"})
            t.snapshot_embeddings(epoch)
            if (epoch + 1) % cfg.train.checkpoint_every == 0 or epoch == t.total_epochs - 1:
                t.run_dir.save_checkpoint(step.state(j, epoch))
        bar.tick()
        if not any(alive):
            break
    bar.close()
    wall = time.perf_counter() - started
    return [error if error is not None else t.summary(wall) for t, error in zip(trainers, errors)]


def interrupted_text(interrupt: KeyboardInterrupt, run_dir: RunDir, step: int | None) -> str:
    """What ``status.json`` of an interrupted run says, and what the interruption carries for the
    command line's message (``interrupt.runs``: (run directory, step reached, checkpoint step))."""
    runs = getattr(interrupt, "runs", None)
    if runs is None:
        runs = interrupt.runs = []  # type: ignore[attr-defined]
    runs.append((run_dir.path, step, run_dir.checkpoint_step))
    name = getattr(interrupt, "signal_name", "KeyboardInterrupt")
    return f"{name}" + ("" if step is None else f" at step {step}") + f"; {_kept_text(run_dir)}"


def run_config(cfg: RunConfig, quiet: bool = False, *, wait: bool = False) -> dict[str, Any]:
    """Train (or resume, or just read back) the run of ``cfg``; returns its summary.

    The config and the task's data are checked before anything is written; the run directory is
    locked while the run trains (another process training it raises RunLockedError, or with
    ``wait`` is waited for). SIGINT/SIGTERM (:class:`moduli.errors.RunInterrupted`) and Ctrl-C
    mark the run ``interrupted``, keeping its last checkpoint, and propagate.
    """
    run_dir = RunDir.checked(cfg)
    if run_dir.is_finished:
        return run_dir.summary()
    task_class(cfg.task).check_data([cfg])
    with RunLock(run_dir.path, wait=wait, quiet=quiet):
        if run_dir.is_finished:  # finished by the process this one waited for
            return run_dir.summary()
        run_dir.start()
        trainer: Trainer | None = None
        try:
            trainer = Trainer(cfg, run_dir, quiet)
            summary = trainer.run()
        except KeyboardInterrupt as interrupt:
            run_dir.mark_interrupted(interrupted_text(interrupt, run_dir, None if trainer is None else trainer.step))
            raise
        except StorageError as error:  # e.g. the disk filled up while writing a checkpoint or metrics line
            run_dir.mark_failed(error)
            raise StorageError(f"{error}; the run stopped: {_kept_text(run_dir)}") from error
        except Exception as error:
            run_dir.mark_failed(error)
            raise
        run_dir.write_summary(summary)
    return summary


def _kept_text(run_dir: RunDir) -> str:
    if run_dir.checkpoint_step is None:
        return "it has no checkpoint yet, train it again to restart it"
    return f"its checkpoint of step {run_dir.checkpoint_step} is kept, train it again to resume"
