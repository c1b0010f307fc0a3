"""The files the toolkit ships: task configs, recipes, reproduction presets and the tiny corpus.

In a source checkout they live at the repository root (``configs/``, ``data/tiny-wikitext/``); a
built wheel carries copies under ``moduli/_shipped/`` (see ``setup.py``). Either way they are found
from any working directory:

- a config is given by path (``configs/navigation.yaml``, relative to the working directory or to
  the shipped root) or by name (``navigation``, ``tiny``, ``regularizer/torus_dog``);
- a relative data directory (``language.data_dir``) is read from the working directory; the
  shipped corpus ``data/tiny-wikitext`` is found from anywhere.

This module imports nothing heavy: the command line uses it before torch is loaded.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["shipped_root", "config_root", "resolve_config", "config_names", "resolve_data_dir", "RECIPE_GROUPS", "SHIPPED_DATA"]

_PACKAGE = Path(__file__).resolve().parent
# Data directories that travel with the toolkit (relative to the shipped root).
SHIPPED_DATA: tuple[str, ...] = ("data/tiny-wikitext",)
# Section names whose recipes live in configs/<section>/<name>.yaml: `regularizer=torus_dog`.
RECIPE_GROUPS: tuple[str, ...] = ("regularizer", "pruning")


def shipped_root() -> Path:
    """The directory that holds ``configs/`` and ``data/``: the wheel's copy, else the checkout."""
    wheel = _PACKAGE / "_shipped"
    return wheel if (wheel / "configs").is_dir() else _PACKAGE.parent


def config_root() -> Path:
    """The shipped ``configs/`` directory."""
    return shipped_root() / "configs"


def config_names() -> list[str]:
    """Every shipped config by name (``navigation``, ``regularizer/torus_dog``), reproduction presets excluded."""
    root = config_root()
    names = [p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")]
    return sorted(n for n in names if not n.startswith("reproduce/"))


def resolve_config(name: str | Path) -> Path:
    """The YAML file meant by ``name``: an existing path, a path under the shipped root, or a shipped name.

    Returns ``Path(name)`` unchanged when nothing matches, so the caller reports it as missing.
    """
    path = Path(name)
    if path.exists() or path.is_absolute():
        return path
    root = shipped_root()
    if (root / path).exists():
        return root / path
    if path.suffix not in (".yaml", ".yml") and (config_root() / f"{path.as_posix()}.yaml").is_file():
        return config_root() / f"{path.as_posix()}.yaml"
    return path


def resolve_data_dir(data_dir: str | Path) -> Path:
    """``data_dir`` itself when it exists (or is absolute), else the shipped copy of a shipped corpus."""
    path = Path(data_dir)
    if path.exists() or path.is_absolute() or path.as_posix().rstrip("/") not in SHIPPED_DATA:
        return path
    return shipped_root() / path
