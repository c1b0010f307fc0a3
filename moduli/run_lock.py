"""One writer per run directory: an exclusive lock held while a process trains the run.

The lock is the file ``<run dir>/.lock``, held with ``flock`` (:mod:`fcntl`). The kernel releases
a ``flock`` when its holder exits or is killed, so a lock left by a killed process is simply taken
over by the next one; nothing has to guess whether a process id is still alive. While held, the
file names its holder (process id, host, command line, start time), which is what a second
process reports when it finds the run busy. The holder removes the file before it releases the
lock; a file still present when the lock is taken was left by a killed process and is reported.

A process may take the same lock again (re-entrant): a batched group that falls back to training
its runs one by one goes through the same entry points.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .atomic import _storage_error, ensure_dir
from .errors import RunLockedError

__all__ = ["LOCK_NAME", "RunLock", "holder_of"]

LOCK_NAME = ".lock"
POLL_SECONDS = 0.5  # how often a waiting process tries again

_held: dict[str, list[int]] = {}  # lock file -> [descriptor, depth] of the locks this process holds


def _record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(["moduli", *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python",
        "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _read(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 65536, 0)
        record = json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "another process (it is just starting)"
    return (
        f"process {record.get('pid')} on {record.get('host')} (since {record.get('since')}: "
        f"{record.get('command')})"
    )


def holder_of(run_path: str | Path) -> dict[str, Any] | None:
    """The record of the process holding ``run_path``'s lock, or None if nobody holds it."""
    path = Path(run_path) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """The exclusive lock of the run directory ``run_path`` (a context manager).

    ``wait``: if another process holds it, wait until it is free (printing one line unless
    ``quiet``) instead of raising :class:`RunLockedError`. After :meth:`acquire`, ``taken_over``
    is the record of a killed process whose lock was taken over (None otherwise).
    """

    def __init__(self, run_path: str | Path, *, wait: bool = False, quiet: bool = True) -> None:
        self.run_path = Path(run_path)
        self.path = self.run_path / LOCK_NAME
        self.wait, self.quiet = wait, quiet
        self.taken_over: dict[str, Any] | None = None
        self._key: str | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the run directory if needed); returns ``self``."""
        ensure_dir(self.run_path)
        key = str(self.path.resolve())
        if key in _held:
            _held[key][1] += 1
            self._key = key
            return self
        announced = False
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _storage_error(self.path, exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                if not self.wait:
                    raise RunLockedError(
                        f"run directory {self.run_path} is in use by {_describe(holder)}; wait for it to finish "
                        "or stop it, or add --wait to wait for it"
                    ) from None
                if not announced and not self.quiet:
                    print(f"run directory {self.run_path} is in use by {_describe(holder)}; waiting for it",
                          file=sys.stderr, flush=True)
                    announced = True
                time.sleep(POLL_SECONDS)
                continue
            if not self._is_current(fd):  # its holder removed it while this process waited: try the new one
                os.close(fd)
                continue
            break
        try:
            previous = _read(fd)
            if previous is not None:
                self.taken_over = previous
                if not self.quiet:
                    print(f"run directory {self.run_path}: taking over the lock left by {_describe(previous)}, "
                          "which is no longer running", file=sys.stderr, flush=True)
            data = json.dumps(_record()).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            self._drop(fd)
            raise _storage_error(self.path, exc) from exc
        _held[key] = [fd, 1]
        self._key = key
        return self

    def _is_current(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except OSError:
            return False

    def _drop(self, fd: int) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def release(self) -> None:
        """Give the lock back (the last release of a re-entrant lock removes the file)."""
        if self._key is None:
            return
        entry = _held.get(self._key)
        key, self._key = self._key, None
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        self._drop(entry[0])

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
