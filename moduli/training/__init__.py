"""Config-driven training: ``run_config(cfg)`` trains (or resumes) one run into its run directory."""

from .evaluate import evaluate_run
from .loop import DivergenceError, Trainer, run_config

__all__ = ["DivergenceError", "Trainer", "evaluate_run", "run_config"]
