"""Presets of a reproduced table: which base configs, sizes, seeds and sparsities to use.

A preset is a YAML file ``configs/reproduce/<table>/<preset>.yaml``::

    table: navigation                       # must be the table it is used for
    description: tiny sizes, pipeline check only
    configs: [configs/navigation.yaml, configs/tiny.yaml]   # merged in order (project root relative)
    overrides: [train.device=cpu]           # key=value overrides on top of the configs
    model: {hidden_size: 256}               # optional config sections, same as overrides
    seeds: [0, 1]
    sparsities: [0.9, 0.98]                 # omitted: the paper's targets for the table
    dense: true                             # also train a dense (unpruned) reference column
    jobs: 1                                 # parallel local processes (--jobs wins)

Config sections in the preset (a task's section such as ``navigation``, ``model``, ``optim``,
``train``, ``regularizer``, ``pruning``) become ``key=value`` overrides placed before the
``overrides`` list. Keys the table itself varies (regulariser kind, manifold, inhibitor, pruning
method and target, seed, output directory) may not be set. Relative paths in ``configs`` are
relative to the project root, so the command works from any directory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config.schema import TASKS
from ..config.validate import suggest
from ..errors import ConfigError
from ..resources import shipped_root
from ..planner import format_override_value
from .tables import table_spec

__all__ = ["Preset", "PRESET_NAMES", "PROJECT_ROOT", "PRESETS_DIR", "preset_path", "load_preset", "FORBIDDEN_KEYS"]

PROJECT_ROOT: Path = shipped_root()  # the directory holding configs/ (checkout or installed copy)
PRESETS_DIR: Path = PROJECT_ROOT / "configs" / "reproduce"
PRESET_NAMES: tuple[str, ...] = ("smoke", "cpu", "paper")

# Keys each table cell sets itself; a preset setting them would make the rows or columns lie.
FORBIDDEN_KEYS: tuple[str, ...] = (
    "task",
    "out_dir",
    "train.seed",
    "regularizer.kind",
    "regularizer.manifold",
    "regularizer.inhibitor",
    "regularizer.permute",
    "regularizer.invert",
    "regularizer.learn_embedding",
    "pruning.method",
    "pruning.target",
    "pruning.lottery",
)
_SECTIONS: tuple[str, ...] = TASKS + ("model", "optim", "train", "regularizer", "pruning")
_KEYS: tuple[str, ...] = ("table", "description", "configs", "overrides", "seeds", "sparsities", "dense", "jobs") + _SECTIONS


@dataclass(frozen=True)
class Preset:
    """A validated preset of one table."""

    name: str  # preset name (smoke, cpu, paper, or a custom file's stem)
    table: str  # the table it belongs to
    path: Path  # the YAML file it was read from
    description: str  # one line stated in the table caption
    configs: tuple[Path, ...]  # base YAML configs (absolute paths), merged in order
    overrides: tuple[str, ...]  # key=value overrides (sections first, then the overrides list)
    seeds: tuple[int, ...]  # train.seed values, one run per seed and cell
    sparsities: tuple[float, ...]  # target sparsities, in column order
    dense: bool  # whether a dense reference column is trained
    jobs: int  # default number of parallel local processes


def _err(path: Path, message: str) -> ConfigError:
    return ConfigError("preset error: " + " ".join(f"{message} (in {path})".split()))


def preset_path(table: str, preset: str) -> Path:
    """The YAML file of ``preset`` for ``table``: a name (smoke, cpu, paper) or a path to a .yaml file."""
    table_spec(table)  # unknown table: ValueError naming the allowed ones
    if preset.endswith((".yaml", ".yml")):
        path = Path(preset)
        if not path.is_file():
            raise ConfigError(f"preset error: preset file {preset!r} does not exist; give a YAML file or one of {', '.join(PRESET_NAMES)}")
        return path
    if preset not in PRESET_NAMES:
        raise ConfigError(
            f"preset error: unknown preset {preset!r}; allowed: {', '.join(PRESET_NAMES)} "
            f"or a path to a preset .yaml file{suggest(preset, PRESET_NAMES)}"
        )
    path = PRESETS_DIR / table / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset error: preset file {path} is missing; restore it from the repository")
    return path


def _flatten(prefix: str, value: Any, path: Path) -> list[str]:
    if isinstance(value, dict):
        items: list[str] = []
        for key, sub in value.items():
            if not isinstance(key, str):
                raise _err(path, f"key {prefix}{key!r} must be a string")
            items.extend(_flatten(f"{prefix}.{key}", sub, path))
        return items
    try:
        return [f"{prefix}={format_override_value(value)}"]
    except TypeError as exc:
        raise _err(path, f"{prefix} = {value!r}: {exc}") from exc


def _string_list(data: dict[str, Any], key: str, path: Path) -> list[str]:
    value = data.get(key, [])
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _err(path, f"{key} must be a list of non-empty strings, got {value!r}")
    return value


def _check_forbidden(item: str, path: Path) -> None:
    key = item.split("=", 1)[0].strip()
    if "=" not in item or not key:
        raise _err(path, f"override {item!r} is not of the form key=value (e.g. train.epochs=10)")
    if key in FORBIDDEN_KEYS:
        raise _err(path, f"{key} is set by the table's rows and columns and may not be set in a preset; remove it")


def load_preset(table: str, preset: str) -> Preset:
    """Read and validate the preset ``preset`` (name or YAML path) of ``table``.

    Raises ConfigError with a one-line ``preset error: ...`` message for any problem; the run
    configs themselves are validated later, cell by cell.
    """
    spec = table_spec(table)
    path = preset_path(table, preset)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _err(path, f"malformed YAML{where}: {problem}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _err(path, f"cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise _err(path, f"a preset must be a mapping with keys {', '.join(_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in _KEYS:
            raise _err(path, f"unknown key {key!r}{suggest(str(key), _KEYS)}; allowed: {', '.join(_KEYS)}")
    if data.get("table") != table:
        raise _err(path, f"table = {data.get('table')!r} but this preset is used for table {table!r}; set table: {table}")

    description = data.get("description", "")
    if not isinstance(description, str):
        raise _err(path, f"description must be one line of text, got {description!r}")

    config_names = _string_list(data, "configs", path)
    if not config_names:
        raise _err(path, f"configs must list at least the task file, e.g. [configs/{spec.task}.yaml]")
    configs = []
    for name in config_names:
        p = Path(name) if Path(name).is_absolute() else PROJECT_ROOT / name
        if not p.is_file():
            raise _err(path, f"config file {name!r} does not exist (looked at {p})")
        configs.append(p)

    overrides: list[str] = []
    for section in _SECTIONS:
        if section in data:
            if not isinstance(data[section], dict):
                raise _err(path, f"{section} must be a mapping of config keys, got {data[section]!r}")
            overrides.extend(_flatten(section, data[section], path))
    overrides.extend(_string_list(data, "overrides", path))
    for item in overrides:
        _check_forbidden(item, path)

    seeds = data.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise _err(path, f"seeds must be a non-empty list of distinct integers >= 0, got {seeds!r}")

    sparsities = data.get("sparsities", list(spec.default_sparsities))
    if (
        not isinstance(sparsities, list)
        or not sparsities
        or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and 0 < s < 1 for s in sparsities)
        or len(set(sparsities)) != len(sparsities)
    ):
        raise _err(path, f"sparsities must be a non-empty list of distinct numbers in (0, 1), got {sparsities!r}")

    dense = data.get("dense", False)
    if not isinstance(dense, bool):
        raise _err(path, f"dense must be true or false, got {dense!r}")
    jobs = data.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise _err(path, f"jobs must be an integer >= 1, got {jobs!r}")

    return Preset(
        name=path.stem if preset.endswith((".yaml", ".yml")) else preset,
        table=table,
        path=path,
        description=" ".join(description.split()),
        configs=tuple(configs),
        overrides=tuple(overrides),
        seeds=tuple(seeds),
        sparsities=tuple(float(s) for s in sparsities),
        dense=dense,
        jobs=jobs,
    )
