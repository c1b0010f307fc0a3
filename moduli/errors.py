"""Project-wide error classes.

A *user error* is a mistake the user can fix (a bad config value, a missing data file, a
corrupt checkpoint, a read-only output directory). The command line prints such errors as one
line and exits with status 2 instead of showing a traceback. A *run failure*
(:class:`RunFailedError`, e.g. a diverging loss) is a valid run that failed while it ran: one
line as well, exit status 1. ``USER_ERRORS`` lists the classes
treated that way; other packages may extend it with :func:`register_user_error`.
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
    "USER_ERRORS",
    "register_user_error",
]


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


# Exception classes the command line reports as one-line user errors (exit status 2).
USER_ERRORS: tuple[type[BaseException], ...] = (ModuliError,)


def register_user_error(cls: type[BaseException]) -> None:
    """Add ``cls`` to :data:`USER_ERRORS` (idempotent), e.g. a package's own ``DataError``."""
    global USER_ERRORS
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise TypeError(f"register_user_error needs an exception class, got {cls!r}")
    if cls not in USER_ERRORS:
        USER_ERRORS = USER_ERRORS + (cls,)
