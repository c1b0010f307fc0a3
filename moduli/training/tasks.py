"""The three tasks as the training loop sees them: a model, a training batch loss, an evaluation.

Each task owns its data source (generated on the training device from a seeded generator, or the
WikiText-2 token streams), its model head, its loss and its metric. ``state_dict`` holds the data
generator's state so a resumed run draws exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..config.schema import RunConfig
from ..resources import resolve_data_dir
from ..models import AddingRNN, PathIntegrationRNN, RecurrentModel, RNNLanguageModel
from ..models.elman_stack import RegularizerFactory
from ..tasks import (
    BASELINE_MSE,
    AddingProblem,
    Corpus,
    PlaceCells,
    Trajectories,
    TrajectoryGenerator,
    adding_loss,
    batchify,
    cap_vocabulary,
    decoding_error_cm,
    get_batch,
    load_offline_splits,
    load_wikitext2,
    navigation_loss,
    next_token_accuracy,
    perplexity,
    unigram_perplexity,
    unk_rate,
)

EVAL_SEED_OFFSET = 1_000_003  # evaluation batches come from their own stream, never from training's


class Task:
    """Interface shared by the task adapters."""

    name: str  # task name as in the config
    metric: str  # name of the headline metric (lower is better for all three tasks)
    model: RecurrentModel  # the network being trained

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        """Loss of one fresh training batch (0-d tensor, differentiable) and extra logged values."""
        raise NotImplementedError

    def evaluate(self, split: str = "valid") -> dict[str, float]:
        """Metrics on held-out data; always has ``"loss"`` and ``self.metric``."""
        raise NotImplementedError

    def steps_per_epoch(self, configured: int | None) -> int:
        if configured is None:
            raise ValueError(f"train.steps_per_epoch must be set for the {self.name} task (it has no finite training set)")
        return configured

    def start_epoch(self) -> None:
        """Called at the start of every epoch."""

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _navigation_world(cfg: RunConfig, device: torch.device) -> tuple[TrajectoryGenerator, PlaceCells]:
    """The trajectory generator and the target place cells of ``cfg.navigation`` (centres on ``device``)."""
    nav = cfg.navigation
    place_cells = PlaceCells(
        nav.num_place_cells, nav.place_cell_sigma, nav.surround_scale, nav.box_size, seed=nav.place_cell_seed,
        tuning=nav.place_cell_tuning,
    ).to(device)
    return TrajectoryGenerator(box_size=nav.box_size, seq_len=nav.seq_len), place_cells


def _start_cells(cfg: RunConfig, place_cells: PlaceCells) -> PlaceCells:
    """The cells whose activation at the start position the encoder reads (``navigation.start_tuning``)."""
    tuning = cfg.navigation.start_tuning
    return place_cells if tuning == "same" else place_cells.with_tuning(tuning)


def _recurrent_init(cfg: RunConfig) -> dict[str, Any]:
    """The model's W_hh initialisation keywords (``model.recurrent_init`` and its scale)."""
    return {"recurrent_init": cfg.model.recurrent_init, "recurrent_init_scale": cfg.model.recurrent_init_scale}


class NavigationTask(Task):
    """Path integration: place-cell cross-entropy; metric = top-3 decoding error in cm."""

    name, metric = "navigation", "error_cm"

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        nav = cfg.navigation
        self.batch_size = cfg.train.batch_size
        self.eval_batches, self.eval_batch_size = nav.eval_batches, nav.eval_batch_size
        self.device, self.eval_seed = device, seed + EVAL_SEED_OFFSET
        self.trajectories, self.place_cells = _navigation_world(cfg, device)
        self.start_cells = _start_cells(cfg, self.place_cells)
        # per_second: displacement per step / dt, an input in m/s (50 times the metres per step)
        self.per_second = nav.velocity_units == "per_second"
        self.model = PathIntegrationRNN(
            nav.num_place_cells, cfg.model.hidden_size, cfg.model.nonlinearity, regularizer, bias=cfg.model.bias,
            **_recurrent_init(cfg),
        )
        self.generator = _generator(device, seed)

    def model_inputs(self, traj: Trajectories) -> tuple[Tensor, Tensor, Tensor]:
        """What the model reads and is trained towards for a batch of trajectories:
        velocity input (T, B, 2) in the configured units, start activation (B, P) of the start
        cells, target activation (T, B, P) of the place cells."""
        velocity = traj.velocity / self.trajectories.dt if self.per_second else traj.velocity
        return velocity, self.start_cells.activation(traj.start), self.place_cells.activation(traj.position)

    def _batch_loss(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        traj = self.trajectories.sample(batch_size, generator=generator, device=self.device)
        velocity, start, target = self.model_inputs(traj)
        logits = self.model(velocity, start)
        return navigation_loss(logits, target), logits, traj.position

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        loss, _, _ = self._batch_loss(self.batch_size, self.generator)
        return loss, {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        generator = _generator(self.device, self.eval_seed)
        losses, errors = [], []
        for _ in range(self.eval_batches):
            loss, logits, position = self._batch_loss(self.eval_batch_size, generator)
            losses.append(float(loss))
            errors.append(decoding_error_cm(logits.float(), position, self.place_cells))
        return {"loss": sum(losses) / len(losses), "error_cm": sum(errors) / len(errors)}


@torch.no_grad()
def navigation_baselines(cfg: RunConfig, seed: int = 0, device: torch.device | str = "cpu") -> dict[str, float]:
    """Decoding errors (cm) of three references on a run's evaluation trajectories.

    The same trajectories and place-cell tuning :meth:`NavigationTask.evaluate` uses for
    ``train.seed = seed``: ``start`` decodes the start position (the target cells' activation
    there) at every step (no path integration), ``centre`` always answers the box centre, and
    ``true`` decodes the true place-cell activations (the floor the place-cell code allows). Two
    cross-entropies (nats per step) bound the training loss: ``loss_uniform`` = ln(place cells), what a constant prediction scores, and
    ``loss_floor``, the mean entropy of the targets, which no model can go below.
    """
    nav = cfg.navigation
    device = torch.device(device)
    trajectories, place_cells = _navigation_world(cfg, device)
    generator = _generator(device, seed + EVAL_SEED_OFFSET)
    sums = {"start": 0.0, "centre": 0.0, "true": 0.0, "loss_floor": 0.0}
    for _ in range(nav.eval_batches):
        traj = trajectories.sample(nav.eval_batch_size, generator=generator, device=device)
        target = place_cells.activation(traj.position)
        still = place_cells.activation(traj.start).expand_as(target)
        sums["start"] += decoding_error_cm(still, traj.position, place_cells)
        sums["centre"] += float(traj.position.norm(dim=-1).mean()) * 100.0
        sums["true"] += decoding_error_cm(target, traj.position, place_cells)
        sums["loss_floor"] += float(torch.special.entr(target).sum(-1).mean())
    refs = {k: v / nav.eval_batches for k, v in sums.items()}
    refs["loss_uniform"] = math.log(nav.num_place_cells)
    return refs


class AddingTask(Task):
    """Adding problem: MSE, reported beside the constant-predictor baseline 1/6."""

    name, metric = "adding", "mse"

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        self.batch_size = cfg.train.batch_size
        self.eval_batches, self.eval_batch_size = cfg.adding.eval_batches, cfg.adding.eval_batch_size
        self.device, self.eval_seed = device, seed + EVAL_SEED_OFFSET
        self.problem = AddingProblem(cfg.adding.seq_len)
        self.model = AddingRNN(
            cfg.model.hidden_size, cfg.model.nonlinearity, regularizer, bias=cfg.model.bias, **_recurrent_init(cfg)
        )
        self.generator = _generator(device, seed)

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        inputs, target = self.problem.sample(self.batch_size, generator=self.generator, device=self.device)
        return adding_loss(self.model(inputs), target), {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        generator = _generator(self.device, self.eval_seed)
        total = 0.0
        for _ in range(self.eval_batches):
            inputs, target = self.problem.sample(self.eval_batch_size, generator=generator, device=self.device)
            total += float(adding_loss(self.model(inputs).float(), target))
        mse = total / self.eval_batches
        return {"loss": mse, "mse": mse, "baseline_mse": BASELINE_MSE}


def language_corpus(cfg: RunConfig) -> tuple[Corpus, str]:
    """The corpus a language run trains on (splits and vocabulary cap of ``cfg.language``), and a
    sentence saying which text trained, validated and tested."""
    lang = cfg.language
    if lang.offline_splits:
        corpus, description = load_offline_splits(resolve_data_dir(lang.data_dir))
    else:
        corpus = load_wikitext2(resolve_data_dir(lang.data_dir), download=lang.download)
        description = f"trained on {lang.data_dir}/train, validated on valid, tested on test"
    if lang.max_vocab is not None:
        corpus = cap_vocabulary(corpus, lang.max_vocab)
        description += (
            f"; vocabulary capped at the {len(corpus.dictionary)} most frequent training words "
            f"(others are <unk>: {unk_rate(corpus.train, corpus.dictionary):.1%} of training and "
            f"{unk_rate(corpus.test, corpus.dictionary):.1%} of test tokens)"
        )
    return corpus, description


def language_baselines(cfg: RunConfig) -> dict[str, float]:
    """Test perplexities of two references on a language run's data: ``unigram`` (add-one-smoothed
    word frequencies of the training split) and ``uniform`` (the vocabulary size)."""
    corpus, _ = language_corpus(cfg)
    vocab = len(corpus.dictionary)
    return {"unigram": unigram_perplexity(corpus.train, corpus.test, vocab), "uniform": float(vocab)}


class LanguageTask(Task):
    """Word-level WikiText-2: an epoch is a pass over the training tokens in BPTT windows."""

    name, metric = "language", "perplexity"

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        lang = cfg.language
        corpus, self.data_description = language_corpus(cfg)
        self.bptt, self.device = lang.bptt, device
        self.train_data = batchify(corpus.train, cfg.train.batch_size).to(device)
        self.eval_data = {
            split: batchify(getattr(corpus, split), lang.eval_batch_size).to(device) for split in ("valid", "test")
        }
        self.model = RNNLanguageModel(
            len(corpus.dictionary), cfg.model.embedding_size, cfg.model.hidden_size, cfg.model.num_layers,
            cfg.model.nonlinearity, cfg.model.dropout, regularizer, bias=cfg.model.bias, **_recurrent_init(cfg),
        )
        self.position, self.hidden = 0, None  # next BPTT window and the carried hidden state

    def steps_per_epoch(self, configured: int | None) -> int:
        windows = math.ceil((self.train_data.shape[0] - 1) / self.bptt)
        return windows if configured is None else min(windows, configured)

    def start_epoch(self) -> None:
        self.position, self.hidden = 0, None

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        if self.position >= self.train_data.shape[0] - 1:
            self.position, self.hidden = 0, None
        inputs, target = get_batch(self.train_data, self.position, self.bptt)
        self.position += self.bptt
        hidden = None if self.hidden is None else self.hidden.detach()
        logits, self.hidden = self.model(inputs, hidden)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        return loss, {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        data = self.eval_data[split]
        total, tokens, correct, hidden = 0.0, 0, 0.0, None
        for i in range(0, data.shape[0] - 1, self.bptt):
            inputs, target = get_batch(data, i, self.bptt)
            logits, hidden = self.model(inputs, hidden)
            n = target.numel()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))) * n
            correct += next_token_accuracy(logits, target) * n
            tokens += n
        loss = total / tokens
        return {"loss": loss, "perplexity": perplexity(loss), "accuracy": correct / tokens}

    def state_dict(self) -> dict[str, Any]:
        return {}  # windows are read in order and every epoch restarts at 0: nothing to carry

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


TASKS: dict[str, type[Task]] = {"navigation": NavigationTask, "adding": AddingTask, "language": LanguageTask}


def build_task(cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> Task:
    """The task adapter named by ``cfg.task``, its model on ``device``."""
    task = TASKS[cfg.task](cfg, device, seed, regularizer)
    task.model.to(device)
    return task
