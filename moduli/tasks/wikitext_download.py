"""Checksum-verified download and extraction of the official WikiText-2 archive.

The archive is streamed to a temporary file in the cache directory and renamed to its
final name only after its SHA-256 matches, so an interrupted or corrupted download never
leaves a file under the final name. The token files are extracted the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import DataError

WIKITEXT2_URL: str = "https://wikitext.smerity.com/wikitext-2-v1.zip"
"""The dataset author's mirror of the official word-level archive."""

WIKITEXT2_SHA256: str | None = "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"
"""SHA-256 of ``wikitext-2-v1.zip`` as published at its original location
(s3.amazonaws.com/research.metamind.io/wikitext/) and pinned by several independent
dataset loaders. ``None`` would mean: accept the archive, print its digest and record it
next to the archive."""

ARCHIVE_NAME = "wikitext-2-v1.zip"
ARCHIVE_MEMBERS: dict[str, str] = {
    "train": "wikitext-2/wiki.train.tokens",
    "valid": "wikitext-2/wiki.valid.tokens",
    "test": "wikitext-2/wiki.test.tokens",
}
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, archive: Path, sha256: str | None, timeout: float) -> None:
    """Stream ``url`` to a temporary file next to ``archive``; rename after the check."""
    request = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0 (moduli data loader)"})
    fd, tmp_name = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as err:
                raise DataError(
                    f"could not download {url} ({err}); check the connection, or download the archive "
                    f"by hand and put wiki.train.tokens / wiki.valid.tokens / wiki.test.tokens (or "
                    f"train.txt / valid.txt / test.txt) in {archive.parent}"
                ) from err
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if sha256 is None:
            print(f"WikiText-2 archive from {url}: sha256 {actual} (recorded in {archive}.sha256)")
            atomic_write_text(archive.parent / f"{archive.name}.sha256", f"{actual}  {archive.name}\n")
        elif actual != sha256:
            raise DataError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}; the download was "
                "deleted. Retry; if the server now serves a different archive, check its contents and "
                "pass sha256=None (records the new digest) or the new digest"
            )
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: Path, out_dir: Path) -> None:
    """Extract the three token files of ``archive`` into ``out_dir`` (atomic per file)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            absent = [m for m in ARCHIVE_MEMBERS.values() if m not in names]
            if absent:
                raise DataError(
                    f"{archive} lacks {absent}: it is not the WikiText-2 word-level archive; delete it and retry"
                )
            out_dir.mkdir(parents=True, exist_ok=True)
            for member in ARCHIVE_MEMBERS.values():
                target = out_dir / Path(member).name
                fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out, zf.open(member) as src:
                        shutil.copyfileobj(src, out, _CHUNK)
                        out.flush()
                        os.fsync(out.fileno())
                    os.replace(tmp_name, target)
                finally:
                    Path(tmp_name).unlink(missing_ok=True)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive} is not a valid zip archive ({err}); delete it and retry") from err


def download_wikitext2(
    cache_dir: str | Path = "data/cache",
    url: str = WIKITEXT2_URL,
    sha256: str | None = WIKITEXT2_SHA256,
    timeout: float = 60.0,
) -> Path:
    """Download (once), verify and extract WikiText-2; return the directory of the token files.

    The archive is kept as ``cache_dir/wikitext-2-v1.zip`` and its token files are extracted
    to ``cache_dir/wikitext-2/wiki.{train,valid,test}.tokens``. If those three files exist,
    nothing is downloaded; if only the archive exists, it is checked and extracted.

    Args:
        cache_dir: cache directory (created if needed).
        url: archive location (any scheme urllib opens, ``file://`` included).
        sha256: expected hex digest of the archive, or None to accept any archive and
            print and record its digest in ``wikitext-2-v1.zip.sha256``.
        timeout: network timeout in seconds.
    Raises:
        DataError on network failure, checksum mismatch (no file is left behind) or a
        malformed archive.
    """
    if not isinstance(cache_dir, (str, Path)):
        raise TypeError(f"cache_dir must be a str or pathlib.Path, got {type(cache_dir).__name__}")
    if not isinstance(url, str) or not url:
        raise TypeError(f"url must be a non-empty str, got {url!r}")
    if sha256 is not None and (not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256)):
        raise ValueError(f"sha256 must be 64 lowercase hex digits or None, got {sha256!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")

    cache = Path(cache_dir)
    out_dir = cache / "wikitext-2"
    if all((out_dir / Path(m).name).is_file() for m in ARCHIVE_MEMBERS.values()):
        return out_dir
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / ARCHIVE_NAME
    if not archive.is_file():
        _fetch(url, archive, sha256, float(timeout))
    elif sha256 is not None and sha256_file(archive) != sha256:
        raise DataError(
            f"cached archive {archive} does not match sha256 {sha256}: it is corrupted or a different "
            "file; delete it and call download_wikitext2 again"
        )
    _extract(archive, out_dir)
    return out_dir
