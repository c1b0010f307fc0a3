"""Crash-safe file writing: atomic replacement and durable JSON-lines appends.

An atomic write goes to a temporary file in the target's directory, is flushed and fsynced,
then renamed over the target with ``os.replace`` and the directory is fsynced; a reader sees
either the old or the new file, never a partial one, and a failed write leaves the old file
intact. Permission, read-only and disk-full failures raise :class:`StorageError` naming the path
and the fix.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

from .errors import StorageError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "ensure_dir",
    "append_jsonl",
    "read_jsonl",
    "to_json_value",
]

PathLike = Union[str, "os.PathLike[str]"]

_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_A_DIRECTORY_ERRNOS = {errno.ENOTDIR, errno.EEXIST}  # mkdir where a file stands


def _storage_error(path: Path, exc: OSError) -> OSError:
    """A StorageError with the fix for permission/space failures; ``exc`` itself otherwise."""
    if exc.errno in _PERMISSION_ERRNOS:
        return StorageError(
            f"cannot write {path}: {os.strerror(exc.errno)} (the location is read-only or not yours); "
            "choose a writable directory, e.g. out_dir=/path/you/own"
        )
    if exc.errno in _SPACE_ERRNOS:
        return StorageError(
            f"cannot write {path}: no space left on the device; free disk space or choose another out_dir"
        )
    if exc.errno in _NOT_A_DIRECTORY_ERRNOS:
        return StorageError(
            f"cannot create {path}: a file stands where a directory is needed on that path; "
            "move the file or choose another out_dir"
        )
    return exc


def ensure_dir(path: PathLike) -> Path:
    """Create the directory ``path`` (and its parents) if needed; StorageError naming the fix on failure."""
    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _storage_error(target, exc) from exc
    return target


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import: os.umask can only be read by setting it


def _atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    target = Path(path)
    tmp_name: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are ordinary files
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise _storage_error(target, exc) from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Replace ``path`` atomically with ``data``; returns the path."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    return _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path`` atomically with ``text``; returns the path."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def to_json_value(obj: Any) -> Any:
    """``json.dumps`` hook: tensors/arrays with one element and numpy scalars -> Python numbers,
    paths -> str, tuples/sets -> lists. Raises TypeError for anything else."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError) as exc:  # a tensor/array with more than one element
            raise TypeError(f"cannot store a {type(obj).__name__} with several elements as one JSON value") from exc
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    """Replace ``path`` atomically with ``obj`` as JSON (NaN/Infinity written as such)."""
    text = json.dumps(obj, indent=indent, default=to_json_value) + "\n"
    return atomic_write_text(path, text)


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch  # deferred: only checkpointing needs torch

    return _atomic_write(path, lambda handle: torch.save(obj, handle))


def _drop_partial_tail(path: Path) -> None:
    """Cut a last line without its newline (left by a crash mid-append) off the file."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        end = size
        while end > 0:  # search backwards for the last newline
            start = max(0, end - 4096)
            handle.seek(start)
            chunk = handle.read(end - start)
            pos = chunk.rfind(b"\n")
            if pos >= 0:
                handle.truncate(start + pos + 1)
                return
            end = start
        handle.truncate(0)


def append_jsonl(path: PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``path``, flushed and fsynced.

    A partial last line left by an earlier crash is removed first, so every line stays valid.
    """
    if not isinstance(record, dict):
        raise TypeError(f"a JSON-lines record must be a dict, got {type(record).__name__}")
    target = Path(path)
    line = json.dumps(record, default=to_json_value) + "\n"
    if "\n" in line[:-1]:
        raise ValueError("a JSON-lines record must serialise to a single line")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            _drop_partial_tail(target)
        with open(target, "ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _storage_error(target, exc) from exc


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a truncated last line (a crash mid-append) is ignored.

    A missing file gives ``[]``; a malformed line before the last raises StorageError.
    """
    target = Path(path)
    if not target.exists():
        return []
    lines = target.read_bytes().split(b"\n")
    complete_tail = lines[-1] == b""  # the file ended with a newline
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if number == len(lines) and not complete_tail:
                break  # the last line was cut off mid-write
            raise StorageError(
                f"{target} line {number} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); "
                "delete or repair that line"
            ) from exc
        if not isinstance(record, dict):
            raise StorageError(f"{target} line {number} is not a JSON object; delete or repair that line")
        records.append(record)
    return records

