"""The configuration reference, generated from the typed schema (:mod:`moduli.config.schema`).

Every key's type and default come from the dataclass fields, its allowed choices or range from the
field metadata (the same text the validation errors print), and its meaning from the comment
written beside or above the field in ``schema.py``. The documentation site renders
:func:`config_reference_markdown` at build time, so the page cannot drift from the code.
Run ``python -m moduli.config.reference`` to print it.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from . import schema
from .load import HASH_EXCLUDED, section_class, type_text
from .validate import range_text

__all__ = ["KeyReference", "field_comments", "config_keys", "config_reference_markdown"]

_FIELD_LINE = re.compile(r"^    (\w+)\s*:")  # a field declared in a class body


@dataclass(frozen=True)
class KeyReference:
    """One leaf key of the config, as the reference lists it."""

    key: str  # dotted key, e.g. "pruning.target"
    type: str  # allowed type in words, e.g. "a number or null"
    default: str  # the default as YAML text, or "required"
    allowed: str  # choices ("relu, tanh") or range ("0 <= target < 1"); "" when any value of the type
    meaning: str  # the field's comment in schema.py
    hashed: bool  # False for keys left out of the run hash (they never change results)


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in the source of dataclass ``cls``.

    A comment on the field's own line wins; otherwise the comment lines directly above the field
    are joined. Fields without a comment are absent.
    """
    source = inspect.getsource(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    comment_on_line = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    comments: dict[str, str] = {}
    above: list[str] = []  # comment lines waiting for the next field
    for number, line in enumerate(source.splitlines(), start=1):
        if line.strip().startswith("#"):
            above.append(comment_on_line[number])
            continue
        field_name = _FIELD_LINE.match(line)
        if field_name and field_name.group(1) in names:
            text = comment_on_line.get(number) or " ".join(above)
            if text:
                comments[field_name.group(1)] = text
        above = []  # any other line ends a block of comments
    return comments


def _default_text(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value: Any = f.default_factory()
    else:
        value = f.default
    if value is MISSING or value == MISSING:
        return "required"
    return json.dumps(value) if not isinstance(value, str) else value


def _allowed_text(f: dataclasses.Field) -> str:
    choices = f.metadata.get("choices")
    if choices is not None:
        return ", ".join(map(str, choices))
    if any(f.metadata.get(b) is not None for b in ("ge", "gt", "le", "lt")):
        return range_text(f.name, f.metadata)
    return ""


def config_keys(cls: type = schema.RunConfig, prefix: str = "") -> list[tuple[str, str, list[KeyReference]]]:
    """``[(section key, section description, keys)]`` in schema order; the top-level keys come first
    as section ``""``. Raises ValueError for a field without a comment (the reference needs one)."""
    comments = field_comments(cls)
    leaves: list[KeyReference] = []
    sections: list[tuple[str, str, list[KeyReference]]] = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in comments:
            raise ValueError(f"{cls.__name__}.{f.name} has no comment in schema.py; add one stating its meaning and unit")
        sub = section_class(f)
        if sub is not None:
            description = f"{inspect.getdoc(sub) or ''}".strip()
            for name, text, keys in config_keys(sub, key + "."):
                sections.append((name or key, text or description, keys))
            continue
        leaves.append(KeyReference(
            key=key, type=type_text(str(f.type)), default=_default_text(f), allowed=_allowed_text(f),
            meaning=comments[f.name], hashed=key not in HASH_EXCLUDED,
        ))
    return [(prefix.rstrip("."), "", leaves)] + sections if leaves else sections


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (no emphasis, HTML or column breaks)."""
    for char in ("\\", "*", "_", "`", "|"):
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def config_reference_markdown() -> str:
    """The reference as Markdown: one table per section (key, type, default, allowed, meaning)."""
    lines = []
    for section, description, keys in config_keys():
        title = f"`{section}`" if section else "Top level"
        lines += [f"## {title}", ""]
        if description:
            lines += [_cell(description), ""]
        lines += ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for k in keys:
            meaning = _cell(k.meaning) + ("" if k.hashed else " (not part of the run hash)")
            lines.append(f"| `{k.key}` | {k.type} | `{k.default}` | {_cell(k.allowed)} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(config_reference_markdown())
