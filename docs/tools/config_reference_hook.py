"""MkDocs hook: fills docs/reference/config.md with the reference generated from the config schema."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # document this checkout's code, whatever is installed

MARKER = "<!-- config-reference -->"  # replaced by the generated tables


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    """Replace MARKER by :func:`moduli.config.reference.config_reference_markdown`."""
    if MARKER not in markdown:
        return markdown
    from moduli.config.reference import config_reference_markdown

    return markdown.replace(MARKER, config_reference_markdown())
