"""Worker processes of a local sweep (``jobs > 1``): each trains one run at a time.

Unlike :class:`concurrent.futures.ProcessPoolExecutor`, whose pool breaks as a whole when one
worker dies, the death of a worker (e.g. SIGKILL, the out-of-memory killer) fails only the run it
was training, with :class:`WorkerDied`; a new worker takes the runs still waiting. When the
parent is interrupted (:class:`moduli.errors.RunInterrupted`), every worker gets SIGTERM (each
marks its run ``interrupted`` and exits) and whatever still runs after :data:`STOP_SECONDS` is
killed, so all workers are gone about :data:`STOP_SECONDS` after the signal.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Hashable, Mapping

from .errors import RunFailedError, one_line

__all__ = ["STOP_SECONDS", "WorkerDied", "run_in_workers"]

STOP_SECONDS = 1.5  # how long stopped workers get to record their runs before they are killed

Job = tuple[Callable[..., Any], tuple[Any, ...]]


class WorkerDied(RunFailedError):
    """The worker process training a run ended without a result (killed, or crashed)."""


def _worker(conn: Connection, threads: int) -> None:
    """A worker's loop: receive (key, function, args), send (key, ok, value), until None."""
    from .interrupts import interruptible

    import threading

    import torch
    from tqdm import tqdm

    torch.set_num_threads(threads)
    # tqdm's default lock is a multiprocessing semaphore, which an os._exit below would leak
    tqdm.set_lock(threading.RLock())
    with interruptible():
        try:
            while True:
                job = conn.recv()
                if job is None:
                    return
                key, fn, args = job
                try:
                    conn.send((key, True, fn(*args)))
                except Exception as error:
                    try:
                        conn.send((key, False, error))
                    except Exception:  # an error that cannot be pickled: its text
                        conn.send((key, False, RuntimeError(one_line(error))))
        except (KeyboardInterrupt, EOFError, BrokenPipeError):
            # The run has recorded itself as interrupted (its files are written atomically and
            # fsynced); leave at once, without the interpreter's slow teardown of torch.
            os._exit(0)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def run_in_workers(
    jobs: Mapping[Hashable, Job],
    workers: int,
    threads: int,
    on_result: Callable[[Hashable, Any, BaseException | None], None],
    on_stop: Callable[[list[Hashable], BaseException], None] | None = None,
) -> None:
    """Run every job in at most ``workers`` spawned processes (``threads`` torch threads each).

    ``on_result(key, value, error)`` is called in this process as each job ends: its return value,
    or the exception it raised, or a :class:`WorkerDied` if its worker died. If this process is
    interrupted, the workers are stopped, ``on_stop(keys of the jobs that were running, the
    exception)`` is called, and the interruption propagates.
    """
    context = multiprocessing.get_context("spawn")
    waiting = list(jobs.items())
    live: dict[Connection, list[Any]] = {}  # connection -> [process, key of its job or None]

    def start() -> Connection:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, threads), daemon=True)
        process.start()
        child.close()
        live[parent] = [process, None]
        return parent

    def assign(conn: Connection) -> None:
        if waiting:
            key, (fn, args) = waiting.pop(0)
            live[conn][1] = key
            conn.send((key, fn, args))
        else:
            live[conn][1] = None
            conn.send(None)

    try:
        for _ in range(min(workers, len(waiting))):
            assign(start())
        while any(key is not None for _, key in live.values()):
            sentinels = {process.sentinel: conn for conn, (process, _) in live.items()}
            ready = wait(list(live) + list(sentinels))
            for conn in [c for c in live if c in ready or live[c][0].sentinel in ready]:
                process, key = live[conn]
                message = None
                try:
                    if conn.poll():
                        message = conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    got, ok, value = message
                    on_result(got, value if ok else None, None if ok else value)
                    assign(conn)
                    continue
                process.join(timeout=STOP_SECONDS)  # its end of the pipe closed: it is exiting
                if process.is_alive():
                    process.kill()
                    process.join(timeout=5)
                del live[conn]
                conn.close()
                if key is not None:
                    on_result(key, None, WorkerDied(
                        f"the worker process training this run died ({_death(process.exitcode)}); run the "
                        "sweep again to resume the run from its last checkpoint"
                    ))
                    if waiting:
                        assign(start())
        for process, _ in live.values():
            process.join(timeout=STOP_SECONDS)
    except BaseException as exc:
        running = [key for _, key in live.values() if key is not None]
        _stop([process for process, _ in live.values()])
        if on_stop is not None:
            on_stop(running, exc)
        raise
    finally:
        for conn in live:
            conn.close()


def _stop(processes: list[Any]) -> None:
    """SIGTERM to every live worker; SIGKILL to those still alive after STOP_SECONDS."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
