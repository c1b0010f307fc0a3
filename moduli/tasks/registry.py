"""The tasks by name: the one place that lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError
from ..models.elman_stack import RegularizerFactory
from .adding import AddingTask
from .base import Task
from .digits import DigitsTask
from .language import LanguageTask
from .navigation import NavigationTask

if TYPE_CHECKING:  # pragma: no cover
    from ..config.schema import RunConfig

__all__ = ["TASKS", "build_task", "task_class"]

TASKS: dict[str, type[Task]] = {task.name: task for task in (NavigationTask, AddingTask, LanguageTask, DigitsTask)}


def task_class(name: str) -> type[Task]:
    """The task called ``name`` (as ``task`` in a config)."""
    if name not in TASKS:
        raise ConfigError(f"config error: task = {name!r} is not an allowed choice; allowed: {', '.join(TASKS)}")
    return TASKS[name]


def build_task(cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> Task:
    """The task of ``cfg`` with its model on ``device``."""
    task = task_class(cfg.task)(cfg, device, seed, regularizer)
    task.model.to(device)
    return task
