"""TensorBoard scalars mirroring a run's ``metrics.jsonl`` (``train.tensorboard: true``).

Every metrics record becomes one scalar per numeric field, tagged ``<split>/<field>`` (e.g.
``train/loss``, ``valid/error_cm``) at global step ``record["step"]``; ``step`` and ``split``
themselves are not scalars. The events go to ``<run dir>/tensorboard/``, so
``tensorboard --logdir runs`` shows every run. Needs the ``tensorboard`` package
(the ``tensorboard`` extra: ``pip install -e ".[tensorboard]"``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping

from .errors import DependencyError

__all__ = ["INSTALL_HINT", "tensorboard_available", "scalars_of", "TensorBoardMirror"]

INSTALL_HINT = 'pip install -e ".[tensorboard]" (the tensorboard extra, from the repository root)'


def tensorboard_available() -> bool:
    """True when the ``tensorboard`` package can be imported here."""
    return importlib.util.find_spec("tensorboard") is not None


def scalars_of(record: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one metrics record: ``{"<split>/<field>": value}``.

    Numeric fields only (booleans, strings and nested values are not scalars); a record without
    ``split`` gives bare field names.
    """
    prefix = f"{record['split']}/" if isinstance(record.get("split"), str) else ""
    return {
        prefix + key: float(value)
        for key, value in record.items()
        if key not in ("step", "split") and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class TensorBoardMirror:
    """Writes metrics records as TensorBoard scalars into ``log_dir`` (flushed after each record).

    ``purge_step``: a resumed run's first unlogged step; TensorBoard hides the events of an
    interrupted attempt at that step and later, as ``metrics.jsonl`` drops them.
    """

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        if not tensorboard_available():
            raise DependencyError(
                f"train.tensorboard = true needs the tensorboard package, which is not installed; "
                f"install it with {INSTALL_HINT}, or set train.tensorboard=false"
            )
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(str(self.log_dir), purge_step=purge_step)

    def add(self, record: Mapping[str, Any]) -> None:
        """Write the scalars of ``record`` (which holds an integer ``step``) and flush them."""
        for tag, value in scalars_of(record).items():
            self._writer.add_scalar(tag, value, global_step=record["step"])
        self._writer.flush()  # curves appear while the run trains

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
