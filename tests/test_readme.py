"""The README's Python examples run as written, and say what they claim."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(python_blocks()[index], f"README.md python block {index}", "exec"), {})
    printed = out.getvalue()
    assert printed.strip(), "every example prints what it computed"
    losses = [float(x) for x in re.findall(r"^step\s+\d+\s+loss ([0-9.]+)$", printed, re.M)]
    if losses:  # a training example: the loss falls
        assert losses[-1] < losses[0] / 10, printed
