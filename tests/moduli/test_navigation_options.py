"""The navigation recipe's options as the training task applies them: place-cell tuning of the
targets and of the start state, velocity units, and an identity W_hh that carries the start state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from moduli.config import RunConfig, load_config
from moduli.tasks import PlaceCells
from moduli import tasks as training_tasks

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")

pytestmark = pytest.mark.usefixtures("one_thread")


def nav(tmp_path: Path, *overrides: str) -> RunConfig:
    files = [ROOT / "configs" / "navigation.yaml", ROOT / "configs" / "tiny.yaml"]
    return load_config(files, [f"out_dir={tmp_path}", "regularizer.kind=none", *overrides])


class Recorder(torch.nn.Module):
    """Stands in for the model: records what the task feeds it, answers uniform logits."""

    def __init__(self, cells: int) -> None:
        super().__init__()
        self.cells, self.seen = cells, []

    def forward(self, velocity, start_activation):
        self.seen.append((velocity, start_activation))
        return velocity.new_zeros(velocity.shape[0], velocity.shape[1], self.cells)


def fed(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor, training_tasks.NavigationTask]:
    """The velocity and start activation the task feeds its model for its first training batch."""
    task = training_tasks.NavigationTask(cfg, CPU, cfg.train.seed, None)
    task.model = Recorder(cfg.navigation.num_place_cells)
    task.train_loss()
    velocity, start = task.model.seen[0]
    return velocity, start, task


def first_trajectories(cfg: RunConfig):
    """The trajectories of the task's first training batch, drawn independently of the task."""
    task = training_tasks.NavigationTask(cfg, CPU, cfg.train.seed, None)
    return task.trajectories.sample(cfg.train.batch_size, generator=torch.Generator().manual_seed(cfg.train.seed))


def test_velocity_per_second_is_exactly_velocity_per_step_over_dt(tmp_path):
    per_step, _, task = fed(nav(tmp_path))
    per_second, _, _ = fed(nav(tmp_path, "navigation.velocity_units=per_second"))
    traj = first_trajectories(nav(tmp_path))
    assert task.trajectories.dt == 0.02
    assert torch.equal(per_step, traj.velocity)  # the paper: metres per step
    assert torch.equal(per_second, traj.velocity / 0.02)
    assert float(per_second.abs().max()) == pytest.approx(50 * float(per_step.abs().max()), rel=1e-6)


@pytest.mark.parametrize(
    "targets, start, expected_start",
    [("dog", "same", "dog"), ("gaussian", "same", "gaussian"), ("dog", "gaussian", "gaussian"), ("gaussian", "dog", "dog")],
)
def test_targets_and_start_state_use_their_tuning(tmp_path, targets, start, expected_start):
    cfg = nav(tmp_path, f"navigation.place_cell_tuning={targets}", f"navigation.start_tuning={start}")
    _, start_activation, task = fed(cfg)
    traj = first_trajectories(cfg)
    n = cfg.navigation
    cells = {t: PlaceCells(n.num_place_cells, n.place_cell_sigma, n.surround_scale, n.box_size, n.place_cell_seed, t)
             for t in ("dog", "gaussian")}
    assert torch.equal(start_activation, cells[expected_start].activation(traj.start))
    _, _, target = task.model_inputs(traj)
    assert torch.equal(target, cells[targets].activation(traj.position))
    assert task.place_cells.tuning == targets


def identity_readout_task(cfg: RunConfig) -> training_tasks.NavigationTask:
    """The untrained model of ``cfg`` with encoder and decoder set to the identity (hidden = place
    cells), fed zero velocity: its logits at step t are relu(W_hh^t start code)."""
    task = training_tasks.NavigationTask(cfg, CPU, cfg.train.seed, None)
    eye = torch.eye(cfg.navigation.num_place_cells)
    with torch.no_grad():
        task.model.encoder.weight.copy_(eye)
        task.model.decoder.weight.copy_(eye)
    inputs = task.model_inputs

    def standing_still(traj):
        velocity, start, target = inputs(traj)
        return torch.zeros_like(velocity), start, target

    task.model_inputs = standing_still
    return task


@pytest.mark.parametrize("tuning", ["dog", "gaussian"])
def test_identity_initialised_model_with_zero_velocity_decodes_the_start_position(tmp_path, tuning):
    # 256 cells: with 32, far positions give tied top activations (an arbitrary top-3).
    sizes = ["navigation.num_place_cells=256", "model.hidden_size=256", "navigation.seq_len=20",
             "navigation.eval_batch_size=64", f"navigation.place_cell_tuning={tuning}", "train.seed=2"]
    refs = training_tasks.navigation_baselines(nav(tmp_path, *sizes), seed=2)
    held = identity_readout_task(nav(tmp_path, *sizes, "model.recurrent_init=identity")).evaluate()
    assert held["error_cm"] == pytest.approx(refs["start"], rel=1e-6)
    faded = identity_readout_task(nav(tmp_path, *sizes)).evaluate()  # torch's default W_hh
    assert abs(faded["error_cm"] - refs["start"]) > 5.0
    assert refs["true"] < refs["start"] < refs["centre"]


def test_references_follow_the_place_cell_tuning(tmp_path):
    sizes = ["navigation.num_place_cells=256", "navigation.eval_batch_size=64"]
    dog = training_tasks.navigation_baselines(nav(tmp_path, *sizes), seed=0)
    gaussian = training_tasks.navigation_baselines(nav(tmp_path, *sizes, "navigation.place_cell_tuning=gaussian"), seed=0)
    assert dog["loss_uniform"] == gaussian["loss_uniform"] == pytest.approx(math.log(256))
    assert dog["loss_uniform"] - dog["loss_floor"] < 0.12  # the DoG target is nearly uniform
    assert gaussian["loss_uniform"] - gaussian["loss_floor"] > 2.5  # the Gaussian one is peaked
    assert dog["centre"] == gaussian["centre"]  # the same trajectories
    # the start state's own tuning does not move the references (they decode the target code)
    start_only = training_tasks.navigation_baselines(nav(tmp_path, *sizes, "navigation.start_tuning=gaussian"), seed=0)
    assert start_only == dog
