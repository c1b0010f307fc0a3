"""The navigation task: path integration in a square box, decoded by place cells (Sorscher et al.)."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from modula_core.bond import Select

from ..models import PathIntegrationRNN, stacked_elman
from ..models.elman_stack import RegularizerFactory
from ..models.modular import dense, recurrent
from .base import EVAL_SEED_OFFSET, Task, generator, recurrent_init
from .place_cells import DECODE_K, PlaceCells, activation_is_finite, decoding_error_cm, navigation_loss, smallest_safe_sigma
from .trajectories import Trajectories, TrajectoryGenerator

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from ..config.schema import RunConfig

__all__ = ["NavigationTask", "navigation_baselines"]


def _world(cfg: RunConfig, device: torch.device) -> tuple[TrajectoryGenerator, PlaceCells]:
    """The trajectory generator and the target place cells of ``cfg.navigation`` (centres on ``device``)."""
    nav = cfg.navigation
    place_cells = PlaceCells(
        nav.num_place_cells, nav.place_cell_sigma, nav.surround_scale, nav.box_size, seed=nav.place_cell_seed,
        tuning=nav.place_cell_tuning,
    ).to(device)
    return TrajectoryGenerator(box_size=nav.box_size, seq_len=nav.seq_len), place_cells


class NavigationTask(Task):
    """Path integration: place-cell cross-entropy; metric = top-3 decoding error in cm."""

    name, metric = "navigation", "error_cm"
    metric_label = "decoding error (cm)"
    batchable = True

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        nav = cfg.navigation
        self.batch_size = cfg.train.batch_size
        self.eval_batches, self.eval_batch_size = nav.eval_batches, nav.eval_batch_size
        self.device, self.eval_seed = device, seed + EVAL_SEED_OFFSET
        self.trajectories, self.place_cells = _world(cfg, device)
        # the cells whose activation at the start position the encoder reads (navigation.start_tuning)
        tuning = nav.start_tuning
        self.start_cells = self.place_cells if tuning == "same" else self.place_cells.with_tuning(tuning)
        # per_second: displacement per step / dt, an input in m/s (50 times the metres per step)
        self.per_second = nav.velocity_units == "per_second"
        self.model = PathIntegrationRNN(
            nav.num_place_cells, cfg.model.hidden_size, cfg.model.nonlinearity, regularizer, bias=cfg.model.bias,
            check_inputs=False, **recurrent_init(cfg),
        )
        self.generator = generator(device, seed)

    def model_inputs(self, traj: Trajectories) -> tuple[Tensor, Tensor, Tensor]:
        """What the model reads and is trained towards for a batch of trajectories:
        velocity input (T, B, 2) in the configured units, start activation (B, P) of the start
        cells, target activation (T, B, P) of the place cells."""
        velocity = traj.velocity / self.trajectories.dt if self.per_second else traj.velocity
        return velocity, self.start_cells.activation(traj.start), self.place_cells.activation(traj.position)

    def sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """One training batch from the task's stream, as :meth:`model_inputs` gives it."""
        return self.model_inputs(self.trajectories.sample(self.batch_size, generator=self.generator, device=self.device))

    def _batch_loss(self, batch_size: int, stream: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        traj = self.trajectories.sample(batch_size, generator=stream, device=self.device)
        velocity, start, target = self.model_inputs(traj)
        logits = self.model(velocity, start)
        return navigation_loss(logits, target), logits, traj.position

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        loss, _, _ = self._batch_loss(self.batch_size, self.generator)
        return loss, {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        stream = generator(self.device, self.eval_seed)
        losses, errors = [], []
        for _ in range(self.eval_batches):
            loss, logits, position = self._batch_loss(self.eval_batch_size, stream)
            losses.append(float(loss))
            errors.append(decoding_error_cm(logits.float(), position, self.place_cells))
        return {"loss": sum(losses) / len(losses), "error_cm": sum(errors) / len(errors)}

    @classmethod
    def stacked_losses(cls, tasks: list[Task], params: dict[str, Tensor]) -> Tensor:
        # each run's inputs and targets as its own task makes them (tuning, velocity units)
        velocity, start, target = (torch.stack(parts) for parts in zip(*(task.sample() for task in tasks)))
        h0 = torch.bmm(start, params["encoder.weight"].transpose(1, 2))
        states = stacked_elman(
            velocity, h0, params["rnn.weight_ih_l0"], params["rnn.weight_hh_l0"], params.get("rnn.bias_ih_l0"),
            params.get("rnn.bias_hh_l0"), tasks[0].model.rnn.nonlinearity,
        )
        k, steps, batch, hidden = states.shape
        logits = torch.bmm(states.reshape(k, steps * batch, hidden), params["decoder.weight"].transpose(1, 2))
        logits = logits.view(k, steps, batch, -1)
        return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean(dim=(1, 2))

    @classmethod
    def modular_structure(cls, model: PathIntegrationRNN):
        # (velocity, start activation) -> rnn(velocity, encoder(start)) -> decoder
        rnn, rnn_params = recurrent(model)
        encoder, enc_params = dense(model.encoder)
        decoder, dec_params = dense(model.decoder)
        return decoder @ rnn @ (Select(0), encoder @ Select(1)), enc_params + rnn_params + dec_params

    @classmethod
    def check_config(cls, cfg: RunConfig) -> None:
        from ..config.validate import config_error

        nav = cfg.navigation
        if nav.num_place_cells < DECODE_K:
            raise config_error(
                f"navigation.num_place_cells = {nav.num_place_cells} is too few: a decoded position is the mean "
                f"centre of the {DECODE_K} most active cells; allowed: num_place_cells >= {DECODE_K}"
            )
        tunings = dict.fromkeys([nav.place_cell_tuning, nav.place_cell_tuning if nav.start_tuning == "same" else nav.start_tuning])
        cells = (nav.num_place_cells, nav.place_cell_sigma, nav.surround_scale, nav.box_size, nav.place_cell_seed)
        if "dog" in tunings:
            safe = _smallest_safe_sigma(*cells)
            if nav.place_cell_sigma < safe:
                raise config_error(
                    f"navigation.place_cell_sigma = {nav.place_cell_sigma:g} is too narrow for the difference-of-"
                    f"Gaussians tuning of {nav.num_place_cells} place cells in a {nav.box_size:g} m box: where one "
                    f"centre is much nearer than the others it underflows to 0 in float32 and the targets become NaN; "
                    f"allowed here: "
                    f"place_cell_sigma >= {safe:.3g}, or navigation.place_cell_tuning=gaussian (and start_tuning)"
                )
        for tuning in tunings:
            if not _finite_activation(*cells, tuning):
                raise config_error(
                    f"navigation.place_cell_sigma = {nav.place_cell_sigma:g} gives NaN place-cell activations "
                    f"({tuning} tuning) in float32: the tuning is flat across the {nav.box_size:g} m box; allowed: "
                    "a width of the order of the box or less (the paper: 0.12 m)"
                )

    @classmethod
    def forward_flops(cls, cfg: RunConfig) -> tuple[float, int]:
        n, layers = cfg.model.hidden_size, cfg.model.num_layers
        t, p = cfg.navigation.seq_len, cfg.navigation.num_place_cells
        per_step = 2 * n * n * layers + 2 * 2 * n + 2 * n * n * (layers - 1) + 2 * n * p
        return t * per_step + 2 * p * n, t

    @classmethod
    def eval_sequences(cls, cfg: RunConfig) -> int:
        return cfg.navigation.eval_batches * cfg.navigation.eval_batch_size

    @classmethod
    def scale_text(cls, cfg: RunConfig) -> list[str]:
        nav = cfg.navigation
        parts = [f"{nav.num_place_cells} place cells, {nav.seq_len} steps per trajectory"]
        # the recipe options, named only off the paper's defaults (earlier captions stay as they were)
        if nav.place_cell_tuning != "dog":
            parts.append(f"{nav.place_cell_tuning} place-cell tuning")
        if nav.start_tuning != "same":
            parts.append(f"{nav.start_tuning} start state")
        if nav.velocity_units != "per_step":
            parts.append(f"velocity {nav.velocity_units.replace('_', ' ')}")
        return parts

    @classmethod
    def caption_notes(cls, cfg: RunConfig, seeds: tuple[int, ...], runs: pandas.DataFrame) -> list[str]:
        refs = [navigation_baselines(cfg, seed) for seed in seeds]
        mean = {k: sum(r[k] for r in refs) / len(refs) for k in refs[0]}
        return [
            f"References on the same evaluation trajectories (mean over the seeds): decoding the start position "
            f"at every step, without path integration, {mean['start']:.1f} cm; always the box centre "
            f"{mean['centre']:.1f} cm; decoding the true place-cell activations {mean['true']:.1f} cm. "
            f"Cross-entropy (nats per step): {mean['loss_uniform']:.3f} for a constant prediction, "
            f"{mean['loss_floor']:.3f} at best (the targets' entropy)."
        ]


@functools.lru_cache(maxsize=64)
def _smallest_safe_sigma(num: int, sigma: float, surround: float, box: float, seed: int) -> float:
    return smallest_safe_sigma(PlaceCells(num, sigma, surround, box, seed=seed))


@functools.lru_cache(maxsize=64)
def _finite_activation(num: int, sigma: float, surround: float, box: float, seed: int, tuning: str) -> bool:
    return activation_is_finite(PlaceCells(num, sigma, surround, box, seed=seed, tuning=tuning))


@torch.no_grad()
def navigation_baselines(cfg: RunConfig, seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
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
    trajectories, place_cells = _world(cfg, device)
    stream = generator(device, seed + EVAL_SEED_OFFSET)
    sums = {"start": 0.0, "centre": 0.0, "true": 0.0, "loss_floor": 0.0}
    for _ in range(nav.eval_batches):
        traj = trajectories.sample(nav.eval_batch_size, generator=stream, device=device)
        target = place_cells.activation(traj.position)
        still = place_cells.activation(traj.start).expand_as(target)
        sums["start"] += decoding_error_cm(still, traj.position, place_cells)
        sums["centre"] += float(traj.position.norm(dim=-1).mean()) * 100.0
        sums["true"] += decoding_error_cm(target, traj.position, place_cells)
        sums["loss_floor"] += float(torch.special.entr(target).sum(-1).mean())
    refs = {k: v / nav.eval_batches for k, v in sums.items()}
    refs["loss_uniform"] = math.log(nav.num_place_cells)
    return refs
