"""One directory per run: config snapshot, environment, metrics, checkpoint, status, summary.

Layout of ``<out_dir>/<task>-<config_hash>/``:

- ``config.yaml``       the resolved config (reloadable with ``load_config``)
- ``environment.json``  versions, platform, device, git revision, command line, start time
- ``metrics.jsonl``     one JSON object per logged step or epoch; each has an integer ``step``
- ``checkpoints/last.pt`` the latest training state (written atomically)
- ``status.json``       ``{"status": "running" | "finished" | "failed" | "interrupted", ...}``
- ``.lock``             present while a process trains the run (:mod:`moduli.run_lock`)
- ``summary.json``      final results, written last: its presence means the run is finished
- ``tensorboard/``      with ``train.tensorboard: true``, the metrics records as TensorBoard scalars
- ``embeddings/``       learned neuron positions at the end of every epoch, ``epoch_XXXX.pt``

``step`` (in metrics records and in checkpoint states) counts the optimizer steps completed so
far. On resume, metrics records with a step beyond the checkpoint's are dropped, so the resumed
metrics equal those of an uninterrupted run.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    read_jsonl,
)
from .config import RunConfig, config_hash, config_to_yaml, load_config, validate_config
from .errors import CheckpointError, ConfigError, RunDirError, RunLockedError
from .interrupts import deferred
from .run_lock import RunLock
from .tensorboard_mirror import TensorBoardMirror

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["RunDir", "STATUSES", "environment_info"]

STATUSES: tuple[str, ...] = ("running", "finished", "failed", "interrupted")
_CHECKPOINT_FORMAT = 1  # version of the checkpoint payload layout


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_revision(root: Path) -> str:
    """The project's git commit (with ``+dirty`` for uncommitted changes), or ``"unknown"``."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_info(device: str = "auto") -> dict[str, Any]:
    """Versions, platform, device, git revision, command line and start time, as a dict."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        device_name = platform.processor() or platform.machine() or "cpu"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "geoopt": _version("geoopt"),
        "numpy": _version("numpy"),
        "omegaconf": _version("omegaconf"),
        "platform": platform.platform(),
        "device": device,
        "device_name": device_name,
        "cuda": torch.version.cuda,
        "git_revision": _git_revision(Path(__file__).resolve().parents[1]),
        "command_line": list(sys.argv),
        "start_time": _now(),
    }


class RunDir:
    """Handle on the directory of one run (see the module docstring for the layout)."""

    path: Path  # the run directory, <out_dir>/<task>-<config_hash>
    config: RunConfig  # the run's resolved config
    config_hash: str  # 12-hex-character hash of the config (see moduli.config.config_hash)

    def __init__(self, path: Path, config: RunConfig) -> None:
        self.path = Path(path)
        self.config = config
        self.config_hash = config_hash(config)
        self._tensorboard: TensorBoardMirror | None = None  # opened by the first logged record
        self._tensorboard_purge_step: int | None = None  # set by resume()
        self.checkpoint_step: int | None = None  # step of the checkpoint this handle last saved or loaded

    # -- locating and opening ------------------------------------------------------------------
    @staticmethod
    def path_for(cfg: RunConfig) -> Path:
        """``<out_dir>/<task>-<config_hash>`` for ``cfg`` (nothing is created)."""
        return Path(cfg.out_dir) / f"{cfg.task}-{config_hash(cfg)}"

    @classmethod
    def finished_summary(cls, cfg: RunConfig) -> dict[str, Any] | None:
        """The summary of ``cfg``'s run if it has finished, else None (nothing is created)."""
        return cls(cls.path_for(cfg), cfg).summary()

    @classmethod
    def record_failure(cls, cfg: RunConfig, error: BaseException) -> None:
        """Mark ``cfg``'s run failed, if its directory exists, the run has not finished and no
        other process is training it (its lock is free)."""
        run = cls(cls.path_for(cfg), cfg)
        if not run.path.is_dir() or run.is_finished:
            return
        try:
            with RunLock(run.path):
                if not run.is_finished:
                    run.mark_failed(error)
        except RunLockedError:
            pass

    @classmethod
    def create(cls, cfg: RunConfig, *, check_hardware: bool = True) -> RunDir:
        """Create (or reopen, to resume) the run directory of ``cfg``.

        Validates ``cfg`` before writing anything. A new or unfinished run gets a fresh
        ``config.yaml``, ``environment.json`` and status ``running``; a finished run is
        returned untouched. Raises RunDirError if the directory holds a different config.
        """
        run = cls.checked(cfg, check_hardware=check_hardware)
        if not run.is_finished:
            run.start()
        return run

    @classmethod
    def checked(cls, cfg: RunConfig, *, check_hardware: bool = True) -> RunDir:
        """The run directory of ``cfg``, with ``cfg`` validated and any stored config compared
        (RunDirError if it differs); nothing is written."""
        validate_config(cfg, check_hardware=check_hardware)
        path = cls.path_for(cfg)
        run = cls(path, cfg)
        if run.config_path.exists():
            stored = run._stored_hash()
            if stored != run.config_hash:
                raise RunDirError(
                    f"{path} holds a different config (hash {stored}) than this run ({run.config_hash}): "
                    f"its config.yaml was edited or the hashes collide; move or delete {path}"
                )
        return run

    def start(self) -> None:
        """Write ``config.yaml``, ``environment.json`` and status ``running`` (a new or resumed run)."""
        ensure_dir(self.path)
        atomic_write_text(self.config_path, config_to_yaml(self.config))
        atomic_write_json(self.environment_path, environment_info(self.config.train.device))
        self.set_status("running")

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory (e.g. to evaluate it) from its ``config.yaml``."""
        path = Path(path)
        if path.is_file():
            run = next((p for p in path.parents if (p / "config.yaml").is_file()), None)
            hint = f"pass its run directory: {run}" if run is not None else "pass a directory made by 'moduli train'"
            raise RunDirError(f"{path} is a file, not a run directory; {hint}")
        if not path.is_dir():
            raise RunDirError(f"run directory {path} does not exist; pass a directory made by 'moduli train'")
        config_file = path / "config.yaml"
        if not config_file.is_file():
            raise RunDirError(f"{path} is not a run directory (no config.yaml); pass a directory made by 'moduli train'")
        try:
            cfg = load_config([config_file], check_hardware=False)
        except ConfigError as exc:
            raise RunDirError(f"{config_file} is not a valid run config ({exc}); restore it or delete {path}") from exc
        run = cls(path, cfg)
        named = re.fullmatch(r"[a-z]+-([0-9a-f]{12})", path.name)
        expected = named.group(1) if named else run.config_hash  # renamed copies are not checked
        if expected != run.config_hash:
            raise RunDirError(
                f"{config_file} does not match its directory name (hash {run.config_hash}, directory says "
                f"{expected}): the config was edited; restore it or move the run"
            )
        return run

    def _stored_hash(self) -> str:
        try:
            return config_hash(load_config([self.config_path], check_hardware=False))
        except ConfigError as exc:
            raise RunDirError(
                f"{self.config_path} cannot be read back ({exc}); restore it or delete {self.path}"
            ) from exc

    # -- file names ----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """``config.yaml``: the resolved config snapshot."""
        return self.path / "config.yaml"

    @property
    def environment_path(self) -> Path:
        """``environment.json``: software versions and hardware of the latest start."""
        return self.path / "environment.json"

    @property
    def metrics_path(self) -> Path:
        """``metrics.jsonl``: one JSON record per logged step or epoch."""
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_path(self) -> Path:
        """``checkpoints/last.pt``: the latest training state."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def tensorboard_path(self) -> Path:
        """``tensorboard/``: TensorBoard event files (with ``train.tensorboard: true``)."""
        return self.path / "tensorboard"

    @property
    def embeddings_path(self) -> Path:
        """``embeddings/``: learned neuron positions, one ``epoch_XXXX.pt`` per epoch."""
        return self.path / "embeddings"

    def embedding_snapshot_path(self, epoch: int) -> Path:
        """``embeddings/epoch_XXXX.pt``: the learned positions at the end of ``epoch``."""
        return self.embeddings_path / f"epoch_{epoch:04d}.pt"

    @property
    def summary_path(self) -> Path:
        """``summary.json``: the final results (present only when the run finished)."""
        return self.path / "summary.json"

    @property
    def status_path(self) -> Path:
        """``status.json``: running / finished / failed."""
        return self.path / "status.json"

    # -- status and summary --------------------------------------------------------------------
    @property
    def is_finished(self) -> bool:
        """True when ``summary.json`` exists."""
        return self.summary_path.is_file()

    @property
    def status(self) -> str:
        """``finished`` if the summary exists, else the stored status (``missing`` if none).

        Raises RunDirError naming ``status.json`` if the file is not a valid status record.
        """
        if self.is_finished:
            return "finished"
        record = self.status_record()
        return "missing" if record is None else record["status"]

    def status_record(self) -> dict[str, Any] | None:
        """The contents of ``status.json`` (``status``, ``updated``, ``error``), or None without one."""
        if not self.status_path.is_file():
            return None
        try:
            record = json.loads(self.status_path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("status") not in STATUSES:
                raise ValueError(f"no 'status' among {', '.join(STATUSES)}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunDirError(
                f"{self.status_path} is corrupt ({' '.join(str(exc).split())[:120]}); delete it: "
                "'moduli train' writes it again when the run resumes"
            ) from exc
        return record

    def set_status(self, status: str, error: str | None = None) -> None:
        """Record ``status`` (one of :data:`STATUSES`) and an optional error message."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        atomic_write_json(self.status_path, {"status": status, "updated": _now(), "error": error})

    def mark_failed(self, error: BaseException | str) -> None:
        """Record status ``failed`` with a one-line description of ``error``.

        Best effort: if even ``status.json`` cannot be written (e.g. the disk is full), the error
        that ended the run is what the caller reports, so the write failure is dropped.
        """
        text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        self.close_tensorboard()
        try:
            self.set_status("failed", " ".join(text.split()))
        except OSError:
            pass

    def mark_interrupted(self, message: str) -> None:
        """Record status ``interrupted`` (best effort, as :meth:`mark_failed`)."""
        self.close_tensorboard()
        try:
            self.set_status("interrupted", message)
        except OSError:
            pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json`` (this marks the run finished) and set status ``finished``."""
        if not isinstance(summary, dict):
            raise TypeError(f"summary must be a dict, got {type(summary).__name__}")
        atomic_write_json(self.summary_path, summary)
        self.close_tensorboard()
        self.set_status("finished")

    def summary(self) -> dict[str, Any] | None:
        """The contents of ``summary.json``, or None if the run has not finished."""
        if not self.is_finished:
            return None
        try:
            summary = json.loads(self.summary_path.read_text(encoding="utf-8"))
            if not isinstance(summary, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunDirError(
                f"{self.summary_path} is corrupt ({' '.join(str(exc).split())[:120]}); delete it to train the run "
                "again from its last checkpoint, or restore it"
            ) from exc
        return summary

    # -- metrics -------------------------------------------------------------------------------
    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one metrics record; it must hold an integer ``step`` (steps completed).

        With ``train.tensorboard`` the record's numeric fields also go to ``tensorboard/``.
        """
        if not isinstance(record, dict):
            raise TypeError(f"a metrics record must be a dict, got {type(record).__name__}")
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"a metrics record needs an integer 'step' >= 0 (steps completed), got {step!r}")
        append_jsonl(self.metrics_path, record)
        if self.config.train.tensorboard:
            if self._tensorboard is None:
                self._tensorboard = TensorBoardMirror(self.tensorboard_path, self._tensorboard_purge_step)
                self._tensorboard_purge_step = None
            self._tensorboard.add(record)

    def close_tensorboard(self) -> None:
        """Close the TensorBoard event file, if one is open (a later record opens a new one)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metrics records in logging order."""
        return read_jsonl(self.metrics_path)

    def metrics(self) -> pandas.DataFrame:
        """The metrics as a DataFrame, one row per record (empty if none were logged)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.read_metrics())

    def truncate_metrics(self, after_step: int) -> int:
        """Keep only records with ``step <= after_step``; returns how many were dropped."""
        if not isinstance(after_step, int) or isinstance(after_step, bool):
            raise TypeError(f"after_step must be an int, got {type(after_step).__name__}")
        records = self.read_metrics()
        kept = [r for r in records if r.get("step", 0) <= after_step]
        if len(kept) != len(records):
            text = "".join(json.dumps(r) + "\n" for r in kept)
            atomic_write_text(self.metrics_path, text)
        return len(records) - len(kept)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Save ``state`` atomically to ``checkpoints/last.pt``, tagged with the config hash.

        ``state`` must hold an integer ``step`` (steps completed) and otherwise only what
        ``torch.load(weights_only=True)`` accepts: tensors, numbers, strings, lists, dicts.
        """
        if not isinstance(state, dict):
            raise TypeError(f"checkpoint state must be a dict, got {type(state).__name__}")
        step = state.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"checkpoint state needs an integer 'step' >= 0 (steps completed), got {step!r}")
        payload = {"format": _CHECKPOINT_FORMAT, "config_hash": self.config_hash, "state": state}
        with deferred():  # a signal in between would leave checkpoint_step behind the file
            atomic_torch_save(payload, self.checkpoint_path)
            self.checkpoint_step = step

    def load_checkpoint(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The saved state, or None if there is no checkpoint.

        Raises CheckpointError for a corrupt/truncated file, one written for another config, one
        holding code (only tensors and plain data load), or one whose ``model`` weights are not finite.
        """
        path = self.checkpoint_path
        if not path.is_file():
            return None
        import torch

        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # torch raises several types for damaged or foreign files
            detail = " ".join(str(exc).split())[:200]
            raise CheckpointError(
                f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {detail}); "
                "delete it to restart the run from the beginning"
            ) from exc
        if not (isinstance(payload, dict) and {"config_hash", "state"} <= payload.keys()):
            raise CheckpointError(
                f"checkpoint {path} was not written by RunDir.save_checkpoint; delete it to restart the run"
            )
        if payload["config_hash"] != self.config_hash:
            raise CheckpointError(
                f"checkpoint {path} belongs to config {payload['config_hash']}, not to this run "
                f"({self.config_hash}); delete it to restart the run"
            )
        state = payload["state"]
        model = state.get("model") if isinstance(state, dict) else None
        for name, tensor in (model.items() if isinstance(model, dict) else ()):
            if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(
                    f"checkpoint {path} holds NaN or infinite weights ({name}): it was damaged or edited; "
                    "delete it to restart the run from the beginning"
                )
        self.checkpoint_step = state.get("step") if isinstance(state, dict) else None
        return state

    def resume(self, map_location: Any = "cpu") -> dict[str, Any] | None:
        """Load the checkpoint and drop metrics logged after it (all of them if there is none).

        Returns the checkpoint state or None (start from scratch).
        """
        state = self.load_checkpoint(map_location)
        last_step = state["step"] if state is not None else -1
        self.truncate_metrics(last_step)
        self._tensorboard_purge_step = last_step + 1  # TensorBoard hides the dropped records too
        return state

    def __repr__(self) -> str:
        try:
            status = self.status
        except RunDirError:
            status = "corrupt"
        return f"RunDir({str(self.path)!r}, status={status!r})"
