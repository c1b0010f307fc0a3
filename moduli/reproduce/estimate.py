"""A rough estimate of the GPU time a table needs, from the model sizes and run lengths.

Model of the cost (an estimate, not a measurement):

- FLOPs of one training step = 3 x the forward FLOPs of the batch (backward ~ 2 x forward),
  counting 2 FLOPs per multiply-add of every matrix product: the recurrent (N x N), input,
  encoder and decoder matrices. Evaluation passes add their forward FLOPs. A lottery run trains
  twice; stabilising epochs add to the first training. Element-wise work (activations, the penalty, masks) is ignored.
- Time of one step = max(FLOPs / ``throughput``, time steps x layers x ``latency``): small
  recurrent models are bound by the sequential kernel launches of the time loop, not by FLOPs.
  A measured step time can replace this model (``step_seconds``; ``experiments/gpu_check.py``).
- The FLOPs of one sequence, the length of an epoch and of an evaluation pass are the task's
  (``Task.forward_flops``, ``estimated_steps_per_epoch``, ``eval_sequences``). Language: the
  vocabulary and training-token counts are WikiText-2's (33,278 words; 2,088,628 training tokens)
  when an epoch is a full pass (``train.steps_per_epoch: null``).
"""

from __future__ import annotations

from ..config import RunConfig
from ..tasks.language import WIKITEXT2_TRAIN_TOKENS, WIKITEXT2_VOCAB
from ..tasks.registry import task_class

__all__ = [
    "ASSUMED_TFLOPS",
    "ASSUMED_STEP_LATENCY_S",
    "WIKITEXT2_VOCAB",
    "WIKITEXT2_TRAIN_TOKENS",
    "train_step_flops",
    "run_seconds",
    "estimate_gpu_hours",
    "assumptions_text",
]

ASSUMED_TFLOPS = 20.0  # sustained fp32/TF32 throughput of one data-centre GPU on these matmuls, TFLOP/s
ASSUMED_STEP_LATENCY_S = 60e-6  # forward + backward kernel time per time step and layer, seconds


def _forward_flops_per_sequence(cfg: RunConfig) -> tuple[float, int]:
    """(forward FLOPs of one sequence, time steps of one sequence)."""
    return task_class(cfg.task).forward_flops(cfg)


def train_step_flops(cfg: RunConfig) -> float:
    """FLOPs of one training step (forward + backward) of ``cfg``'s model."""
    forward, _ = _forward_flops_per_sequence(cfg)
    return 3.0 * cfg.train.batch_size * forward


def _step_seconds(flops: float, time_steps: int, layers: int) -> float:
    return max(flops / (ASSUMED_TFLOPS * 1e12), time_steps * layers * ASSUMED_STEP_LATENCY_S)


def run_seconds(cfg: RunConfig, step_seconds: float | None = None) -> float:
    """Estimated GPU seconds of one run of ``cfg`` (training and per-epoch evaluation).

    ``step_seconds``: a measured time of one training step of ``cfg``'s model. It replaces the
    FLOP / latency model of a step, and an evaluation pass is then priced at a third of a step (the
    forward share) per ``train.batch_size`` sequences.
    """
    if step_seconds is not None and (
        isinstance(step_seconds, bool) or not isinstance(step_seconds, (int, float)) or not step_seconds > 0
    ):
        raise ValueError(f"step_seconds must be a positive number of seconds, got {step_seconds!r}")
    forward, time_steps = _forward_flops_per_sequence(cfg)
    layers = cfg.model.num_layers
    epochs = cfg.train.epochs * (2 if cfg.pruning.lottery else 1) + cfg.train.stabilise_epochs
    if step_seconds is None:
        step_seconds_model = _step_seconds(train_step_flops(cfg), time_steps, layers)
    else:
        step_seconds_model = float(step_seconds)
    train = epochs * task_class(cfg.task).estimated_steps_per_epoch(cfg) * step_seconds_model
    eval_sequences = task_class(cfg.task).eval_sequences(cfg)
    if step_seconds is None:
        evaluation = epochs * _step_seconds(eval_sequences * forward, time_steps, layers) / 3.0
    else:
        evaluation = epochs * step_seconds_model * eval_sequences / cfg.train.batch_size / 3.0
    return train + evaluation


def estimate_gpu_hours(configs: list[RunConfig], step_seconds: float | None = None) -> float:
    """Estimated GPU hours of training every config in ``configs`` once (one GPU per run).

    ``step_seconds``: one measured training-step time used for every config (see
    :func:`run_seconds`); meaningful for configs that share a model size.
    """
    return sum(run_seconds(c, step_seconds) for c in configs) / 3600.0


def assumptions_text() -> str:
    """One line stating the assumptions of the estimate."""
    return (
        f"estimate from matrix-product FLOPs x 3 (forward + backward) at an assumed sustained "
        f"{ASSUMED_TFLOPS:g} TFLOP/s, with a floor of {ASSUMED_STEP_LATENCY_S * 1e6:g} us per time step "
        f"and layer; language assumes WikiText-2 sizes; not a measurement"
    )
