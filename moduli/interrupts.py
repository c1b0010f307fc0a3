"""SIGINT and SIGTERM as ordinary events: while :func:`interruptible` is active, the first of
them raises :class:`moduli.errors.RunInterrupted` in the main thread; the command then records
its runs as ``interrupted`` (each keeps its last checkpoint), says how to resume and exits with
130 or 143. Signals that arrive while it cleans up are ignored, so the clean-up (a status file,
stopping a sweep's workers) is not cut short.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import RunInterrupted

__all__ = ["SIGNALS", "deferred", "interruptible"]

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
_deferring = 0  # depth of nested deferred() blocks in the main thread
_pending: int | None = None  # a signal that arrived inside a deferred() block


@contextmanager
def deferred() -> Iterator[None]:
    """Hold back an interruption until the block ends (e.g. a checkpoint and the record of its
    step, which must not be separated), then raise it."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if _deferring == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise RunInterrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into one :class:`RunInterrupted` (no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: object) -> None:
        global _pending
        nonlocal raised
        if raised:
            return
        raised = True
        if _deferring:
            _pending = signum
            return
        raise RunInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
