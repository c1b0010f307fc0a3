"""Sequential digits: scikit-learn's bundled 8 x 8 handwritten digits read as a sequence by an
Elman RNN, classified from the last hidden state.

The 1,797 images (pixel values 0-16, scaled to [0, 1]) are split once, stratified by class, into
1,077 training, 360 validation and 360 test images (``digits.split_seed`` fixes the split,
independently of ``train.seed``). ``digits.read: rows`` feeds 8 steps of 8 pixels (one row per
step), ``pixels`` 64 steps of one pixel (the small version of sequential MNIST). A training step
draws ``train.batch_size`` training images at random (with replacement) from the task's stream;
the metric is the classification error rate (a fraction, lower is better).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataError
from ..models import LastStateRNN
from ..models.elman_stack import RegularizerFactory
from ..models.modular import last_state
from .base import Task, generator, recurrent_init

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from ..config.schema import RunConfig

__all__ = ["CLASSES", "DigitsTask", "digit_splits", "digits_baselines", "read_as_sequence"]

CLASSES = 10
SIDE = 8  # the images are SIDE x SIDE
SPLIT_SIZES = {"valid": 360, "test": 360}  # the rest (1,077 images) trains
READS = {"rows": (SIDE, SIDE), "pixels": (SIDE * SIDE, 1)}  # read -> (time steps, features per step)


@lru_cache(maxsize=4)
def _splits(split_seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    try:
        data = load_digits()
    except OSError as exc:  # the data files ship inside scikit-learn
        raise DataError(f"scikit-learn's bundled digits could not be read ({exc}); reinstall scikit-learn") from exc
    images, labels = (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=SPLIT_SIZES["test"], stratify=labels, random_state=split_seed
    )
    train_x, valid_x, train_y, valid_y = train_test_split(
        rest_x, rest_y, test_size=SPLIT_SIZES["valid"], stratify=rest_y, random_state=split_seed
    )
    return {"train": (train_x, train_y), "valid": (valid_x, valid_y), "test": (test_x, test_y)}


def digit_splits(split_seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """split -> (images (n, 64) float32 in [0, 1], labels (n,) int64), for train, valid and test."""
    return {name: (torch.from_numpy(x.copy()), torch.from_numpy(y.copy())) for name, (x, y) in _splits(split_seed).items()}


def read_as_sequence(images: Tensor, read: str) -> Tensor:
    """images (B, 64) -> the sequence the RNN reads, (T, B, I): rows (8, B, 8) or pixels (64, B, 1)."""
    if read not in READS:
        raise ValueError(f"read must be one of {', '.join(READS)}, got {read!r}")
    steps, features = READS[read]
    return images.reshape(images.shape[0], steps, features).transpose(0, 1)


class DigitsTask(Task):
    """Sequential 8 x 8 digits: cross-entropy of the last state's read-out; metric = error rate."""

    name, metric = "digits", "error"
    metric_label = "error rate"
    has_test_split = batchable = True

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        self.read, self.device = cfg.digits.read, device
        self.batch_size = cfg.train.batch_size
        self.data = {name: (x.to(device), y.to(device)) for name, (x, y) in digit_splits(cfg.digits.split_seed).items()}
        self.model = LastStateRNN(
            READS[self.read][1], CLASSES, cfg.model.hidden_size, cfg.model.nonlinearity, regularizer,
            bias=cfg.model.bias, **recurrent_init(cfg),
        )
        self.generator = generator(device, seed)

    def sample(self) -> tuple[Tensor, Tensor]:
        """One training batch from the task's stream: inputs (T, B, I), labels (B,)."""
        images, labels = self.data["train"]
        index = torch.randint(len(labels), (self.batch_size,), generator=self.generator, device=self.device)
        return read_as_sequence(images[index], self.read), labels[index]

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        inputs, labels = self.sample()
        return nn.functional.cross_entropy(self.model(inputs), labels), {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        images, labels = self.data[split]  # the whole split (360 images) in one batch
        logits = self.model(read_as_sequence(images, self.read)).float()
        loss = float(nn.functional.cross_entropy(logits, labels))
        wrong = int((logits.argmax(dim=-1) != labels).sum())
        return {"loss": loss, "error": wrong / len(labels), "accuracy": 1.0 - wrong / len(labels)}

    @classmethod
    def stacked_losses(cls, tasks: list[Task], params: dict[str, Tensor]) -> Tensor:
        pairs = [task.sample() for task in tasks]
        inputs, labels = torch.stack([p[0] for p in pairs]), [p[1] for p in pairs]
        # 8 input features: one input projection per run, as unbatched (last bits)
        logits = tasks[0].model.stacked_forward(inputs, params, per_run_projection=True)
        return torch.stack([nn.functional.cross_entropy(out, y) for out, y in zip(logits, labels)])

    @classmethod
    def modular_structure(cls, model: LastStateRNN):
        return last_state(model)

    # ------------------------------------------------------------------ estimates and tables
    @classmethod
    def forward_flops(cls, cfg: RunConfig) -> tuple[float, int]:
        n, layers = cfg.model.hidden_size, cfg.model.num_layers
        steps, features = READS[cfg.digits.read]
        per_step = 2 * n * n * layers + 2 * features * n + 2 * n * n * (layers - 1)
        return steps * per_step + 2 * n * CLASSES, steps

    @classmethod
    def eval_sequences(cls, cfg: RunConfig) -> int:
        return SPLIT_SIZES["valid"]

    @classmethod
    def scale_text(cls, cfg: RunConfig) -> list[str]:
        steps, features = READS[cfg.digits.read]
        return [f"8 x 8 digits read by {cfg.digits.read} ({steps} steps of {features} pixel{'s' if features > 1 else ''})"]

    @classmethod
    def caption_notes(cls, cfg: RunConfig, seeds: tuple[int, ...], runs: pandas.DataFrame) -> list[str]:
        refs = digits_baselines(cfg)
        return [
            f"References on the same test split ({SPLIT_SIZES['test']} images, split seed {cfg.digits.split_seed}): "
            f"always the most frequent training class {refs['majority']:.3f}; logistic regression on the 64 pixels "
            f"(no recurrence) {refs['logistic']:.3f}."
        ]


def digits_baselines(cfg: RunConfig) -> dict[str, Any]:
    """Test error rates of two references on a digits run's split: ``majority`` (always the most
    frequent training class) and ``logistic`` (scikit-learn's logistic regression on the 64 pixels)."""
    from sklearn.linear_model import LogisticRegression

    splits = _splits(cfg.digits.split_seed)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    majority = np.bincount(train_y, minlength=CLASSES).argmax()
    classifier = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return {
        "majority": float((test_y != majority).mean()),
        "logistic": float((classifier.predict(test_x) != test_y).mean()),
    }
