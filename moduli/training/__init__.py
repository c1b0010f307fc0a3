"""Config-driven training: ``run_config(cfg)`` trains (or resumes) one run into its run directory;
``train_batched(cfgs)`` trains seeds of one config as one batched model, through the same loop."""

from .batched import seed_groups, train_batched, unsupported_reason
from .evaluate import evaluate_run
from .loop import DivergenceError, Trainer, fit, run_config

__all__ = [
    "DivergenceError", "Trainer", "evaluate_run", "fit", "run_config", "seed_groups", "train_batched", "unsupported_reason",
]
