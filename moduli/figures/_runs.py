"""Reading what the figures need from run directories: the run, its manifold, its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checks import check_int
from ..manifolds import Manifold, Torus, get_manifold
from ..run_dir import RunDir

__all__ = ["as_run", "run_manifold", "run_label", "final_state", "check_layer"]


def as_run(run: Any, what: str = "run") -> RunDir:
    """``run`` as a RunDir: a RunDir is returned as is, a str/Path is opened with ``RunDir.open``."""
    if isinstance(run, RunDir):
        return run
    if isinstance(run, (str, Path)):
        return RunDir.open(run)
    raise TypeError(f"{what} must be a RunDir or the path of a run directory, got {type(run).__name__}")


def run_manifold(run: RunDir) -> Manifold | None:
    """The manifold the run's neuron positions live on, or None for ``regularizer.kind: none``.

    The L1 controls keep (unused) positions on the default torus, as ``ModuliRegularizer.l1`` does.
    """
    reg = run.config.regularizer
    if reg.kind == "none":
        return None
    if reg.kind == "moduli":
        return get_manifold(reg.manifold)
    return Torus()


def run_label(run: RunDir) -> str:
    """Short description of a run's regulariser and pruning method, e.g. ``torus dog + magnitude pruning``."""
    cfg = run.config
    reg = cfg.regularizer
    if reg.kind == "moduli":
        parts = [reg.manifold, reg.inhibitor]
        if reg.learn_embedding:
            parts.append("(learned)")
        if reg.permute:
            parts.append("(permuted)")
        reg_text = " ".join(parts)
    elif reg.kind == "none":
        reg_text = "no regulariser"
    else:
        reg_text = reg.kind.replace("_", " ")
    return f"{reg_text} + {cfg.pruning.method} pruning"


def final_state(run: RunDir) -> dict[str, Any]:
    """The model state_dict of the run's last checkpoint (on the CPU)."""
    state = run.load_checkpoint(map_location="cpu")
    if state is None:
        raise ValueError(f"run {run.path} has no checkpoint (checkpoints/last.pt); train it first with 'moduli train'")
    return state["model"]


def check_layer(run: RunDir, layer: Any) -> int:
    """``layer`` if it is a valid recurrent layer index of the run's model."""
    return check_int(layer, f"layer (run {run.path.name} has {run.config.model.num_layers} layer(s))", 0,
                     run.config.model.num_layers)
