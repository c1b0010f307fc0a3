"""What every task provides: the interface the trainer, the config checks and the tables use.

A task module (``adding.py``, ``navigation.py``, ``language.py``, ``digits.py``) holds one
subclass of :class:`Task` with everything that is particular to the task: its data and test
split, its model, loss and metric, its references, the FLOPs of one sequence (for the GPU-hour
estimate), the task's part of a table caption, and the model's modular structure (for the
modular optimisers). :mod:`moduli.tasks.registry` lists the tasks by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from ..models import RecurrentModel
from ..models.elman_stack import RegularizerFactory

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from modula_core import Module

    from ..config.schema import RunConfig

__all__ = ["EVAL_SEED_OFFSET", "Task", "generator", "recurrent_init"]

EVAL_SEED_OFFSET = 1_000_003  # evaluation batches come from their own stream, never from training's


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def recurrent_init(cfg: RunConfig) -> dict[str, Any]:
    """The model's W_hh initialisation keywords (``model.recurrent_init`` and its scale)."""
    return {"recurrent_init": cfg.model.recurrent_init, "recurrent_init_scale": cfg.model.recurrent_init_scale}


class Task:
    """One task: built per run as ``Task(cfg, device, seed, regularizer)``, its model in ``.model``."""

    name: ClassVar[str]  # task name as in the config
    metric: ClassVar[str]  # key of the headline metric in evaluate()'s result (lower is better)
    metric_label: ClassVar[str]  # the metric in words, with its unit (figure axes)
    has_test_split: ClassVar[bool] = False  # a held-out test split, reported in the summary and tables
    multi_layer: ClassVar[bool] = False  # the model stacks model.num_layers layers (dropout between them)
    extra_l1: ClassVar[bool] = False  # regularizer.extra_l1 applies (input, embedding and decoder matrices)
    finite_data: ClassVar[bool] = False  # an epoch may be one pass over the data (train.steps_per_epoch: null)
    model_keys: ClassVar[tuple[str, ...]] = ()  # model.* keys only this task uses
    batchable: ClassVar[bool] = False  # stacked_losses is defined: seeds can be trained as one batched model

    model: RecurrentModel  # the network being trained
    generator: torch.Generator  # the training data stream

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        """Loss of one fresh training batch (0-d tensor, differentiable) and extra logged values."""
        raise NotImplementedError

    def evaluate(self, split: str = "valid") -> dict[str, float]:
        """Metrics on held-out data; always has ``"loss"`` and ``self.metric``."""
        raise NotImplementedError

    def steps_per_epoch(self, configured: int | None) -> int:
        """Optimiser steps of one epoch, given ``train.steps_per_epoch``."""
        if configured is None:
            raise ValueError(f"train.steps_per_epoch must be set for the {self.name} task (it has no finite training set)")
        return configured

    def start_epoch(self) -> None:
        """Called at the start of every epoch."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume the data stream."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def test_metrics(self) -> dict[str, Any]:
        """``{"test": metrics}`` of the current model on the test split, or ``{}`` without one."""
        if not self.has_test_split:
            return {}
        self.model.eval()
        return {"test": self.evaluate("test")}

    def summary_extras(self) -> dict[str, Any]:
        """Task entries of a run's summary (e.g. which text trained a language model)."""
        return {}

    @classmethod
    def stacked_losses(cls, tasks: list[Task], params: dict[str, Tensor]) -> Tensor:
        """(K,) training losses of one fresh batch per task, with the K models' parameters stacked
        in ``params`` (name -> (K, *shape)); equal to each task's :meth:`train_loss`."""
        raise NotImplementedError(f"the {cls.name} task is not batched")

    @classmethod
    def modular_structure(cls, model: RecurrentModel) -> tuple[Module, list[torch.nn.Parameter]]:
        """(modula_core compound, parameters in its weight order) of the task's model."""
        raise NotImplementedError(f"no modular structure is defined for the {cls.name} model")

    # ------------------------------------------------------------------ estimates and tables
    @classmethod
    def forward_flops(cls, cfg: RunConfig) -> tuple[float, int]:
        """(forward FLOPs of one sequence, time steps of one sequence), 2 FLOPs per multiply-add."""
        raise NotImplementedError

    @classmethod
    def estimated_steps_per_epoch(cls, cfg: RunConfig) -> int:
        """Optimiser steps of one epoch without building the task."""
        return cfg.train.steps_per_epoch

    @classmethod
    def eval_sequences(cls, cfg: RunConfig) -> int:
        """Sequences one evaluation pass reads."""
        raise NotImplementedError

    @classmethod
    def scale_text(cls, cfg: RunConfig) -> list[str]:
        """The task's sizes for a table caption, e.g. ``["sequence length 50"]``."""
        return []

    @classmethod
    def caption_notes(cls, cfg: RunConfig, seeds: tuple[int, ...], runs: pandas.DataFrame) -> list[str]:
        """Sentences of a table caption about the task's data and references."""
        return []

    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        """Raise ConfigError for task values the code cannot train (called by ``validate_config``)."""

    @classmethod
    def check_data(cls, configs: list[RunConfig]) -> None:
        """Raise DataError if the data of a run is missing (before any run starts)."""

    @classmethod
    def table_value(cls, summary: dict[str, Any], reading: str) -> tuple[float, str]:
        """(value of the table's metric, split it was measured on) from a run's ``summary``.

        ``reading`` "final": the run's result (the test split where the task has one); "pruned":
        a lottery run's pruned model before re-initialisation.
        """
        if reading == "pruned":
            if "pruned_model" not in summary:
                raise ValueError("the summary has no 'pruned_model' entry: the run was not a lottery run (pruning.lottery)")
            metrics = summary["pruned_model"]
            test = metrics.get("test") if cls.has_test_split else None
            if isinstance(test, dict) and cls.metric in test:
                return float(test[cls.metric]), "test"
            return float(metrics[summary["metric"]]), "valid"
        if reading != "final":
            raise ValueError(f"reading must be 'final' or 'pruned', got {reading!r}")
        if cls.has_test_split:
            if "test" not in summary:
                raise ValueError(f"the {cls.name} summary has no 'test' entry; re-run it with the current trainer")
            return float(summary["test"][cls.metric]), "test"
        return float(summary["value"]), "valid"
