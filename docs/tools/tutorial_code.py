"""Run the Python code of a tutorial page, block after block, as a reader would.

Every fenced block opened by a line that is exactly ```python runs, in page order, in one namespace
(a later block sees the names of the earlier ones), with the working directory set to ``--cwd``.
The tests run every tutorial this way (tests/test_tutorials.py); the pictures a tutorial shows
are produced by its own code:

    python docs/tools/tutorial_code.py docs/tutorials/regularizer.md --cwd docs/tutorials/img
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[2]
OPEN, CLOSE = "```python", "```"


def code_blocks(page: str | Path) -> list[str]:
    """The source of every ```python block of the Markdown file ``page``, in order."""
    blocks, current = [], None
    for line in Path(page).read_text(encoding="utf-8").splitlines():
        if current is None:
            if line.rstrip() == OPEN:
                current = []
        elif line.rstrip() == CLOSE:
            blocks.append("\n".join(current) + "\n")
            current = None
        else:
            current.append(line)
    if current is not None:
        raise ValueError(f"{page}: a ```python block is not closed")
    return blocks


@contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_page(page: str | Path, cwd: str | Path) -> dict[str, Any]:
    """Execute the page's blocks in order in ``cwd``; returns the namespace they filled.

    A failing block raises its exception, with the page and block number in the traceback's
    file name (``<page>#block-<k>``).
    """
    namespace: dict[str, Any] = {"__name__": "__tutorial__"}
    with _working_directory(Path(cwd).resolve()):
        for k, source in enumerate(code_blocks(page), start=1):
            exec(compile(source, f"{page}#block-{k}", "exec"), namespace)
    return namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ```python blocks of a tutorial page in order.")
    parser.add_argument("page", help="a Markdown page, e.g. docs/tutorials/regularizer.md")
    parser.add_argument("--cwd", default=".", help="working directory of the code (where it writes files)")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    run_page(Path(args.page).resolve(), args.cwd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
