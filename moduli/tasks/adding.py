"""The adding problem: sum the two marked values of a long sequence.

Each step carries a pair (value, marker): values ~ U[0, 1), markers are 0 except at
exactly two distinct random positions. The target is the sum of the two marked values.
"""

from __future__ import annotations

import torch

from ._sampling import check_positive_int, resolve_device

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
        check_positive_int("seq_len", seq_len)
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
        check_positive_int("batch_size", batch_size)
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
