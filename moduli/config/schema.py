"""Typed schema of a run's configuration (OmegaConf structured configs).

Every field carries its meaning and unit in a comment. Allowed choices and numeric ranges are
attached as dataclass field metadata (``choices``, ``ge``/``gt``/``le``/``lt``) and enforced by
:func:`moduli.config.validate.validate_config`; cross-field rules live there as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

__all__ = [
    "TASKS",
    "MANIFOLD_NAMES",
    "SMOOTH_MANIFOLDS",
    "EUCLIDEAN_MANIFOLDS",
    "INHIBITOR_NAMES",
    "PLACE_CELL_TUNINGS",
    "RECURRENT_INITS",
    "NavigationConfig",
    "AddingConfig",
    "LanguageConfig",
    "DigitsConfig",
    "ModelConfig",
    "RegularizerConfig",
    "PruningConfig",
    "OptimConfig",
    "TrainConfig",
    "RunConfig",
]

TASKS: tuple[str, ...] = ("navigation", "adding", "language", "digits")  # as moduli.tasks.registry.TASKS
MANIFOLD_NAMES: tuple[str, ...] = ("torus", "torus6", "klein", "circle", "sphere", "s3", "mixed", "r3", "r9")
# Manifolds with a smooth (Riemannian) structure, on which an embedding can be learned.
SMOOTH_MANIFOLDS: frozenset[str] = frozenset(MANIFOLD_NAMES)
EUCLIDEAN_MANIFOLDS: tuple[str, ...] = ("r3", "r9")  # Gaussian starts (regularizer.embedding_init_scale)
INHIBITOR_NAMES: tuple[str, ...] = ("dog", "diffusion", "ripple", "gaussian", "identity", "constant")
PLACE_CELL_TUNINGS: tuple[str, ...] = ("dog", "gaussian")  # as moduli.tasks.place_cells.TUNINGS
RECURRENT_INITS: tuple[str, ...] = ("default", "identity", "orthogonal", "he_uniform")  # moduli.models.recurrent_init


def _choice(default: Any, allowed: tuple[Any, ...]) -> Any:
    """A field whose value must be one of ``allowed``."""
    return field(default=default, metadata={"choices": allowed})


def _ranged(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A numeric field bounded by ``ge``/``gt`` below and ``le``/``lt`` above (None: unbounded)."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt})


@dataclass
class NavigationConfig:
    """Path integration in a square box (Sorscher et al.)."""

    seq_len: int = _ranged(50, ge=1)  # time steps per trajectory (dt = 0.02 s each)
    box_size: float = _ranged(2.2, gt=0)  # side of the square arena, metres
    num_place_cells: int = _ranged(512, ge=1)  # number of place-cell targets (decoder outputs)
    place_cell_sigma: float = _ranged(0.12, gt=0)  # place-cell tuning width, metres
    surround_scale: float = _ranged(2.0, gt=1)  # DoG surround width / centre width (> 1)
    eval_batches: int = _ranged(5, ge=1)  # fresh batches drawn for each evaluation
    eval_batch_size: int = _ranged(200, ge=1)  # trajectories per evaluation batch
    place_cell_seed: int = 0  # seed of the fixed place-cell centres (independent of train.seed)
    # tuning of the place cells (targets and start state): dog (difference of Gaussians, the
    # paper; nearly uniform at sigma 0.12) or gaussian (softmax of -d^2 / (2 sigma^2), peaked)
    place_cell_tuning: str = _choice("dog", PLACE_CELL_TUNINGS)
    # tuning of the start state encoder(cells(start)) alone: same (as place_cell_tuning), dog or gaussian
    start_tuning: str = _choice("same", ("same",) + PLACE_CELL_TUNINGS)
    # velocity input: per_step (metres per step, the paper) or per_second (per_step / dt, dt = 0.02 s)
    velocity_units: str = _choice("per_step", ("per_step", "per_second"))


@dataclass
class AddingConfig:
    """The adding problem: sum of the two marked values of a sequence."""

    seq_len: int = _ranged(50, ge=2)  # sequence length (two markers need >= 2 positions)
    eval_batches: int = _ranged(10, ge=1)  # fresh batches drawn for each evaluation
    eval_batch_size: int = _ranged(1000, ge=1)  # sequences per evaluation batch


@dataclass
class LanguageConfig:
    """Word-level language model on WikiText-2."""

    data_dir: str = "data/tiny-wikitext"  # directory holding the split files (train/valid/test)
    offline_splits: bool = False  # True: train on part of the valid split (no download needed)
    bptt: int = _ranged(35, ge=1)  # truncated back-propagation length, tokens
    eval_batch_size: int = _ranged(10, ge=1)  # parallel token streams for evaluation
    download: bool = False  # True: download missing splits into data_dir
    # null: every word of the loaded splits; an int: the most frequent words of the training
    # split (<eos> and <unk> included), every other word becomes <unk>
    max_vocab: Optional[int] = _ranged(None, ge=2)


@dataclass
class DigitsConfig:
    """Sequential digits: scikit-learn's 8 x 8 handwritten digits read as a sequence."""

    read: str = _choice("rows", ("rows", "pixels"))  # rows: 8 steps of 8 pixels; pixels: 64 steps of 1 pixel
    split_seed: int = _ranged(0, ge=0)  # seed of the fixed train/valid/test split (independent of train.seed)


@dataclass
class ModelConfig:
    """Elman RNN sizes and options."""

    hidden_size: int = _ranged(4096, ge=1)  # hidden neurons per recurrent layer
    num_layers: int = _ranged(1, ge=1)  # stacked recurrent layers
    nonlinearity: str = _choice("relu", ("relu", "tanh"))  # hidden activation
    bias: bool = False  # bias vectors in the recurrent layers
    embedding_size: int = _ranged(650, ge=1)  # token embedding width (language task only)
    dropout: float = _ranged(0.0, ge=0, lt=1)  # dropout probability between layers
    # initialisation of every W_hh: default (torch's U(-1/sqrt(N), 1/sqrt(N)), the paper),
    # identity (scale * I), orthogonal (random, gain scale), he_uniform (U(-sqrt(6/N), sqrt(6/N)))
    recurrent_init: str = _choice("default", RECURRENT_INITS)
    recurrent_init_scale: float = _ranged(1.0, gt=0)  # factor of an identity or orthogonal W_hh


@dataclass
class RegularizerConfig:
    """Penalty on the recurrent weights: strength * reduce(f(d_M(i, j)) * |w_ij|^exponent)."""

    # none: no penalty; moduli: geometric penalty f(d) from the manifold and inhibitor;
    # l1: f = 1 everywhere; mean_matched_l1: f = a constant, see mean_matched
    kind: str = _choice("moduli", ("none", "moduli", "l1", "mean_matched_l1"))
    manifold: str = _choice("torus", MANIFOLD_NAMES)  # moduli space the hidden neurons live on
    inhibitor: str = _choice("dog", INHIBITOR_NAMES)  # f applied to the geodesic distances
    exponent: int = _choice(1, (1, 2))  # power l of |w_ij|
    strength: float = _ranged(0.1, ge=0)  # multiplier of the penalty in the loss
    reduction: str = _choice("mean", ("mean", "sum"))  # reduction over the N^2 entries
    # constant of kind mean_matched_l1 -- plain_dog: mean over the N^2 entries of the plain
    # (non-inverted) DoG on a random embedding of the N neurons on `manifold` (the research code;
    # about 14.9 on the 2-torus); applied: mean of the coefficients the moduli penalty of
    # `manifold` and `inhibitor` applies (about 66.3 for the inverted torus DoG)
    mean_matched: str = _choice("plain_dog", ("plain_dog", "applied"))
    invert: bool = False  # True: f -> max f(D) - f(D), the maximum over the N x N matrix
    learn_embedding: bool = False  # True: neuron positions are parameters
    # optimiser of learned positions -- riemannian_adam: geoopt's RiemannianAdam at embedding_lr;
    # shared: the weights' optimiser (same algorithm and lr, gradient clipped together with the
    # weights), then each position is projected back onto the manifold
    embedding_optimizer: str = _choice("riemannian_adam", ("riemannian_adam", "shared"))
    embedding_lr: float = _ranged(1e-3, gt=0)  # learning rate of riemannian_adam
    embedding_grad_decay: float = _ranged(1.0, gt=0, le=1)  # positions' gradient x decay^epoch
    embedding_init_scale: float = _ranged(1.0, gt=0)  # R^3 / R^9 start: scale x N(0, 1) per coordinate
    permute: bool = False  # True: shuffle the N^2 coefficients (control without geometry)
    # plain L1 on the language model's embedding, decoder and input-to-hidden matrices:
    # extra_l1 x mean |w| of each, in every run (regularizer.kind none included)
    extra_l1: float = _ranged(0.0, ge=0)


@dataclass
class PruningConfig:
    """Which weights are removed, how many, and when."""

    # none: dense; magnitude: smallest |w|; random: random masks matching magnitude's
    # per-matrix sparsity; moduli: magnitude mixed with distance on the manifold
    method: str = _choice("magnitude", ("none", "magnitude", "random", "moduli"))
    target: float = _ranged(0.9, ge=0, lt=1)  # final fraction of pruned weights (ignored for none)
    scope: str = _choice("global", ("global", "layerwise"))  # one threshold, or one per matrix
    # linear: target * e / (E - 1) at the start of epoch e; cubic: cubic ramp; oneshot: at the end
    schedule: str = _choice("linear", ("linear", "cubic", "oneshot"))
    parameters: Optional[List[str]] = None  # names of pruned weights; None: the task's default
    lottery: bool = False  # True: retrain a re-initialised model under the final mask
    # neuron positions of the lottery model -- fresh: a new random embedding (learned again if
    # learn_embedding); reuse: the trained model's final positions, fixed
    lottery_embedding: str = _choice("fresh", ("fresh", "reuse"))
    # learning-rate schedule of the lottery phase -- keep_best: the lr restarts at optim.lr and the
    # plateau schedule keeps the first training's best validation loss; fresh: a new schedule
    lottery_schedule: str = _choice("keep_best", ("keep_best", "fresh"))
    moduli_magnitude_weight: float = _ranged(0.5, ge=0, le=1)  # magnitude share (method moduli)


@dataclass
class OptimConfig:
    """Optimizer of the network weights."""

    # adamw, adam, sgd: torch's; modular_adam, modular_sgd: the same directions with every update
    # normalised in the modular norm of the model (modula_core.optim)
    name: str = _choice("adamw", ("adamw", "adam", "sgd", "modular_adam", "modular_sgd"))
    lr: float = _ranged(1e-4, gt=0)  # learning rate
    weight_decay: float = _ranged(0.01, ge=0)  # (decoupled for adamw) weight decay
    momentum: float = _ranged(0.0, ge=0, lt=1)  # SGD momentum
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam (beta1, beta2), each in [0, 1)
    grad_clip: Optional[float] = _ranged(None, gt=0)  # max global gradient norm; None: no clipping
    lr_schedule: str = _choice("none", ("none", "plateau"))  # plateau: divide lr when val loss stalls
    plateau_factor: float = _ranged(0.25, gt=0, lt=1)  # lr multiplier on a plateau
    plateau_patience: int = _ranged(0, ge=0)  # epochs without improvement before reducing lr


@dataclass
class TrainConfig:
    """Length, batching, seeding and hardware of a run."""

    epochs: int = _ranged(30, ge=1)  # training epochs (the pruning schedule spans them)
    # extra epochs after `epochs` under the final mask, learned positions frozen (the research
    # code's stabilising epochs); the lottery phase, if any, follows them
    stabilise_epochs: int = _ranged(0, ge=0)
    # optimizer steps per epoch; None (language only): one full pass over the training split;
    # for language an integer caps the batches of an epoch
    steps_per_epoch: Optional[int] = _ranged(1000, ge=1)
    batch_size: int = _ranged(200, ge=1)  # sequences per training batch
    seed: int = 0  # base random seed (weights, embeddings, data, pruning)
    replicate: int = _ranged(0, ge=0)  # replicate index; effective seed = seed + replicate
    device: str = "auto"  # auto (cuda if available, else cpu), cpu, cuda or cuda:N
    precision: str = _choice("fp32", ("fp32", "bf16"))  # bf16 autocast needs CUDA
    checkpoint_every: int = _ranged(1, ge=1)  # epochs between checkpoints
    log_every: int = _ranged(100, ge=1)  # steps between logged training metrics
    # True: also write the metrics records as TensorBoard scalars to <run dir>/tensorboard/
    # (needs the tensorboard extra: pip install -e ".[tensorboard]")
    tensorboard: bool = False

    @property
    def effective_seed(self) -> int:
        """The random seed the run uses: ``seed + replicate``."""
        return self.seed + self.replicate


@dataclass
class RunConfig:
    """A complete, validated description of one training run."""

    task: str = _choice(MISSING, TASKS)  # which task to train
    navigation: NavigationConfig = field(default_factory=NavigationConfig)  # task navigation
    adding: AddingConfig = field(default_factory=AddingConfig)  # task adding
    language: LanguageConfig = field(default_factory=LanguageConfig)  # task language
    digits: DigitsConfig = field(default_factory=DigitsConfig)  # task digits
    model: ModelConfig = field(default_factory=ModelConfig)  # network sizes
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)  # weight penalty
    pruning: PruningConfig = field(default_factory=PruningConfig)  # sparsification
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer
    train: TrainConfig = field(default_factory=TrainConfig)  # run length and hardware
    out_dir: str = "runs"  # parent directory of run directories
