"""Project-wide error classes.

A *user error* is a mistake the user can fix (a bad config value, a missing data file, a
corrupt checkpoint, a read-only output directory). The command line prints such errors as one
line and exits with status 2 instead of showing a traceback. A *run failure*
(:class:`RunFailedError`, e.g. a diverging loss) is a valid run that failed while it ran: one
line as well, exit status 1. Every such error is a :class:`ModuliError`; the task data loaders
raise :class:`DataError`. A run directory another process is writing raises
:class:`RunLockedError` (exit status 2). SIGINT and SIGTERM stop a command with
:class:`RunInterrupted` (exit status 130 and 143).
"""

from __future__ import annotations

__all__ = [
    "ModuliError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "RunDirError",
    "StorageError",
    "DependencyError",
    "RunFailedError",
    "RunLockedError",
    "RunInterrupted",
    "one_line",
]


def one_line(error: BaseException) -> str:
    """``TypeName: message`` of ``error`` on one line (whitespace runs collapsed), for tables and logs."""
    return " ".join(f"{type(error).__name__}: {error}".split())


class ModuliError(Exception):
    """Base class of the project's user-facing errors (one-line messages naming the fix)."""


class ConfigError(ModuliError, ValueError):
    """A configuration is invalid: unknown key, wrong type, out-of-range value, missing file."""


class DataError(ModuliError, ValueError):
    """Input data is missing or malformed (e.g. a dataset split that has not been downloaded)."""


class CheckpointError(ModuliError):
    """A checkpoint cannot be used: corrupt, truncated, or written by a different config."""


class RunDirError(ModuliError):
    """A run directory is not usable: missing, not a run directory, or holding another config."""


class StorageError(ModuliError, OSError):
    """A file could not be written: read-only location, permission denied, or disk full."""


class DependencyError(ModuliError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


class RunFailedError(ModuliError):
    """A valid run failed while it ran (e.g. its loss diverged); the command line exits with 1."""


class RunLockedError(ModuliError):
    """Another process holds the run directory's lock (it is training that run)."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the command stops, its runs keep their last checkpoints.

    A :class:`KeyboardInterrupt`, so that ``except Exception`` never swallows it; ``signum`` is
    the signal, and the command line exits with ``128 + signum`` (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """``128 + signum``, as a shell reports a process ended by the signal."""
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        """``SIGINT`` or ``SIGTERM``."""
        import signal

        return signal.Signals(self.signum).name
