"""The adding problem: sum the two marked values of a long sequence.

Each step carries a pair (value, marker): values ~ U[0, 1), markers are 0 except at
exactly two distinct random positions. The target is the sum of the two marked values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..checks import check_int
from ..models import AddingRNN
from ..models.elman_stack import RegularizerFactory
from ..models.modular import last_state
from ._sampling import resolve_device
from .base import EVAL_SEED_OFFSET, Task, generator, recurrent_init

if TYPE_CHECKING:  # pragma: no cover
    from ..config.schema import RunConfig

BASELINE_MSE: float = 1.0 / 6.0
"""MSE of always predicting 1, the best constant prediction.

The target is S = U1 + U2 with U1, U2 independent U[0, 1). E[S] = 1, so the constant
1 is optimal and its MSE is E[(S - 1)^2] = Var(S) = Var(U1) + Var(U2) = 2 * 1/12 = 1/6.
A model has learned the task only when its MSE is well below this.
"""


class AddingProblem:
    """Samples adding-problem batches on the fly."""

    seq_len: int  # sequence length T (>= 2)

    def __init__(self, seq_len: int = 50) -> None:
        check_int(seq_len, "seq_len")
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 to hold two distinct markers, got {seq_len}")
        self.seq_len = seq_len

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a batch.

        Returns:
            inputs (T, B, 2) float32: channel 0 the values, channel 1 the markers (0/1);
            target (B, 1) float32: the sum of the two marked values.
        """
        check_int(batch_size, "batch_size")
        dev = resolve_device(generator, device)
        T, B = self.seq_len, batch_size
        values = torch.rand(T, B, generator=generator, device=dev)
        # The two largest of T i.i.d. uniforms sit at a uniformly random pair of distinct steps.
        marked = torch.rand(T, B, generator=generator, device=dev).topk(2, dim=0).indices  # (2, B)
        markers = torch.zeros(T, B, device=dev)
        markers.scatter_(0, marked, 1.0)
        target = values.gather(0, marked).sum(dim=0).unsqueeze(-1)
        return torch.stack([values, markers], dim=-1), target


def adding_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between ``prediction`` (B, 1) and ``target`` (B, 1); scalar tensor."""
    if not isinstance(prediction, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError("prediction and target must be torch.Tensors")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape (B, 1), got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    return torch.mean((prediction - target) ** 2)


class AddingTask(Task):
    """Adding problem: MSE, reported beside the constant-predictor baseline 1/6."""

    name, metric = "adding", "mse"
    metric_label = "mean squared error"
    batchable = True

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        self.batch_size = cfg.train.batch_size
        self.eval_batches, self.eval_batch_size = cfg.adding.eval_batches, cfg.adding.eval_batch_size
        self.device, self.eval_seed = device, seed + EVAL_SEED_OFFSET
        self.problem = AddingProblem(cfg.adding.seq_len)
        self.model = AddingRNN(
            cfg.model.hidden_size, cfg.model.nonlinearity, regularizer, bias=cfg.model.bias, **recurrent_init(cfg)
        )
        self.generator = generator(device, seed)

    def sample(self) -> tuple[Tensor, Tensor]:
        """One training batch from the task's stream: inputs (T, B, 2), target (B, 1)."""
        return self.problem.sample(self.batch_size, generator=self.generator, device=self.device)

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        inputs, target = self.sample()
        return adding_loss(self.model(inputs), target), {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        eval_generator = generator(self.device, self.eval_seed)
        total = 0.0
        for _ in range(self.eval_batches):
            inputs, target = self.problem.sample(self.eval_batch_size, generator=eval_generator, device=self.device)
            total += float(adding_loss(self.model(inputs).float(), target))
        mse = total / self.eval_batches
        return {"loss": mse, "mse": mse, "baseline_mse": BASELINE_MSE}

    @classmethod
    def stacked_losses(cls, tasks: list[Task], params: dict[str, Tensor]) -> Tensor:
        pairs = [task.sample() for task in tasks]
        inputs, target = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        prediction = torch.stack(tasks[0].model.stacked_forward(inputs, params))
        return ((prediction - target) ** 2).mean(dim=(1, 2))

    @classmethod
    def modular_structure(cls, model: AddingRNN):
        return last_state(model)

    @classmethod
    def forward_flops(cls, cfg: RunConfig) -> tuple[float, int]:
        n, layers, t = cfg.model.hidden_size, cfg.model.num_layers, cfg.adding.seq_len
        per_step = 2 * n * n * layers + 2 * 2 * n + 2 * n * n * (layers - 1)
        return t * per_step + 2 * n, t

    @classmethod
    def eval_sequences(cls, cfg: RunConfig) -> int:
        return cfg.adding.eval_batches * cfg.adding.eval_batch_size

    @classmethod
    def scale_text(cls, cfg: RunConfig) -> list[str]:
        return [f"sequence length {cfg.adding.seq_len}"]
