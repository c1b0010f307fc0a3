"""Sparsity schedules: the pruned fraction as a function of the epoch or step index."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .masks import check_sparsity


def _check_index(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class SparsitySchedule(ABC):
    """Base class: ``sparsity_at(t)`` gives the pruned fraction in [0, 1) at index t >= 0."""

    target: float  # final pruned fraction, in [0, 1)

    @abstractmethod
    def _value(self, t: int) -> float:
        """Pruned fraction at the already validated index ``t``."""

    def sparsity_at(self, t: int) -> float:
        """Pruned fraction in [0, 1) at epoch/step ``t`` (0-based, t >= 0)."""
        return self._value(_check_index(t, "t"))

    def __call__(self, t: int) -> float:
        return self.sparsity_at(t)

    def is_update(self, t: int) -> bool:
        """True when the fraction at ``t`` exceeds the one at ``t - 1`` (0 before t = 0),
        i.e. when new masks must be computed at ``t``."""
        t = _check_index(t, "t")
        before = 0.0 if t == 0 else self._value(t - 1)
        return self.sparsity_at(t) > before


class LinearRamp(SparsitySchedule):
    """Gradual linear ramp over epochs: ``target * e / (E - 1)`` at the start of epoch e.

    Epoch 0 is dense and the last epoch E - 1 is at the target; with E = 1 the target
    applies from epoch 0. Epochs past E - 1 stay at the target.
    """

    def __init__(self, target: float, epochs: int) -> None:
        self.target = check_sparsity(target, "target")  # final pruned fraction
        self.epochs: int = _check_index(epochs, "epochs", minimum=1)  # E, number of epochs

    def _value(self, t: int) -> float:
        if self.epochs == 1 or t >= self.epochs - 1:
            return self.target
        return self.target * t / (self.epochs - 1)

    def __repr__(self) -> str:
        return f"LinearRamp(target={self.target}, epochs={self.epochs})"


class CubicSchedule(SparsitySchedule):
    """Gradual cubic schedule of Zhu & Gupta (2017), over optimisation steps.

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0))**3`` for t0 <= t <= t_end, updated
    every ``frequency`` steps from t0 (held constant between updates); ``s_i`` before t0,
    ``s_f`` from t_end on.
    """

    def __init__(
        self, target: float, start_step: int, end_step: int, initial: float = 0.0, frequency: int = 1
    ) -> None:
        self.target = check_sparsity(target, "target")  # s_f, final pruned fraction
        self.initial: float = check_sparsity(initial, "initial")  # s_i, fraction before t0
        if self.initial > self.target:
            raise ValueError(f"initial ({self.initial}) must not exceed target ({self.target})")
        self.start_step: int = _check_index(start_step, "start_step")  # t0, first pruning step
        self.end_step: int = _check_index(end_step, "end_step")  # t_end, target reached here
        if self.end_step <= self.start_step:
            raise ValueError(
                f"end_step ({end_step}) must be greater than start_step ({start_step})"
            )
        self.frequency: int = _check_index(frequency, "frequency", minimum=1)  # steps between updates

    def _value(self, t: int) -> float:
        if t < self.start_step:
            return self.initial
        if t >= self.end_step:
            return self.target
        last_update = self.start_step + (t - self.start_step) // self.frequency * self.frequency
        progress = (last_update - self.start_step) / (self.end_step - self.start_step)
        return self.target + (self.initial - self.target) * (1.0 - progress) ** 3

    def __repr__(self) -> str:
        return (
            f"CubicSchedule(target={self.target}, start_step={self.start_step}, "
            f"end_step={self.end_step}, initial={self.initial}, frequency={self.frequency})"
        )


class OneShot(SparsitySchedule):
    """Prune once: 0 before index ``at``, ``target`` from ``at`` on."""

    def __init__(self, target: float, at: int = 0) -> None:
        self.target = check_sparsity(target, "target")  # pruned fraction from `at` on
        self.at: int = _check_index(at, "at")  # index at which pruning happens

    def _value(self, t: int) -> float:
        return self.target if t >= self.at else 0.0

    def __repr__(self) -> str:
        return f"OneShot(target={self.target}, at={self.at})"


__all__ = ["SparsitySchedule", "LinearRamp", "CubicSchedule", "OneShot"]
