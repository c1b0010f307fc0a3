"""A rough estimate of the GPU time a table needs, from the model sizes and run lengths.

Model of the cost (an estimate, not a measurement):

- FLOPs of one training step = 3 x the forward FLOPs of the batch (backward ~ 2 x forward),
  counting 2 FLOPs per multiply-add of every matrix product: the recurrent (N x N), input,
  encoder and decoder matrices. Evaluation passes add their forward FLOPs. A lottery run trains
  twice; stabilising epochs add to the first training. Element-wise work (activations, the penalty, masks) is ignored.
- Time of one step = max(FLOPs / ``throughput``, time steps x layers x ``latency``): small
  recurrent models are bound by the sequential kernel launches of the time loop, not by FLOPs.
  A measured step time can replace this model (``step_seconds``; ``experiments/gpu_check.py``).
- Language: the vocabulary and training-token counts are WikiText-2's (33,278 words; 2,088,628
  training tokens) when an epoch is a full pass (``train.steps_per_epoch: null``).
"""

from __future__ import annotations

from ..config import RunConfig

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
WIKITEXT2_VOCAB = 33_278  # WikiText-2 word vocabulary (all splits)
WIKITEXT2_TRAIN_TOKENS = 2_088_628  # WikiText-2 training tokens including <eos>


def _forward_flops_per_sequence(cfg: RunConfig) -> tuple[float, int]:
    """(forward FLOPs of one sequence, time steps of one sequence)."""
    n, layers = cfg.model.hidden_size, cfg.model.num_layers
    if cfg.task == "navigation":
        t, p = cfg.navigation.seq_len, cfg.navigation.num_place_cells
        per_step = 2 * n * n * layers + 2 * 2 * n + 2 * n * n * (layers - 1) + 2 * n * p
        return t * per_step + 2 * p * n, t
    if cfg.task == "adding":
        t = cfg.adding.seq_len
        per_step = 2 * n * n * layers + 2 * 2 * n + 2 * n * n * (layers - 1)
        return t * per_step + 2 * n, t
    t, e, v = cfg.language.bptt, cfg.model.embedding_size, WIKITEXT2_VOCAB
    per_token = 2 * e * n + 2 * n * n * (layers - 1) + 2 * n * n * layers + 2 * n * v
    return t * per_token, t


def train_step_flops(cfg: RunConfig) -> float:
    """FLOPs of one training step (forward + backward) of ``cfg``'s model."""
    forward, _ = _forward_flops_per_sequence(cfg)
    return 3.0 * cfg.train.batch_size * forward


def _steps_per_epoch(cfg: RunConfig) -> int:
    if cfg.train.steps_per_epoch is not None:
        return cfg.train.steps_per_epoch
    return max(1, WIKITEXT2_TRAIN_TOKENS // (cfg.train.batch_size * cfg.language.bptt))


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
    train = epochs * _steps_per_epoch(cfg) * step_seconds_model
    if cfg.task == "navigation":
        eval_sequences = cfg.navigation.eval_batches * cfg.navigation.eval_batch_size
    elif cfg.task == "adding":
        eval_sequences = cfg.adding.eval_batches * cfg.adding.eval_batch_size
    else:  # validation split ~ 1/10 of the training tokens, in BPTT windows
        eval_sequences = WIKITEXT2_TRAIN_TOKENS // 10 // cfg.language.bptt
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
