"""Re-evaluate a finished or interrupted run from its directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..run_dir import RunDir
from .loop import Trainer


def evaluate_run(run: RunDir | str | Path) -> dict[str, Any]:
    """Load the run's config and last checkpoint, rebuild the model, and evaluate it (valid, and test for language)."""
    run_dir = run if isinstance(run, RunDir) else RunDir.open(run)
    cfg = run_dir.config
    trainer = Trainer(cfg, run_dir, quiet=True)
    state = run_dir.load_checkpoint(map_location=trainer.device)
    if state is None:
        raise CheckpointError(f"{run_dir.path} has no checkpoint yet; train it first with `moduli train`")
    trainer.model.load_state_dict(state["model"])
    trainer.model.eval()
    result: dict[str, Any] = {"run_dir": str(run_dir.path), "epoch": state["epoch"], "step": state["step"]}
    result["valid"] = trainer.task.evaluate("valid")
    result.update(trainer.test_metrics())
    return result
