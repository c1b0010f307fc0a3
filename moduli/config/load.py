"""Loading, composing, serialising and hashing run configurations.

``load_config(paths, overrides)`` merges YAML files in order onto the :class:`RunConfig`
schema (later files win), then ``key=value`` overrides, then validates. A YAML file may list
other files to merge first, relative to its own directory::

    defaults: [regularizer/torus_dog.yaml, pruning/gradual_90.yaml]
    task: navigation

YAML is parsed with a safe loader (no code is evaluated). Plain interpolations such as
``${model.hidden_size}`` are allowed; resolver calls such as ``${oc.env:HOME}`` are refused, so a
config never reads the environment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import yaml
from omegaconf import BooleanNode, FloatNode, IntegerNode, OmegaConf, StringNode
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException, ValidationError

from ..errors import ConfigError
from ..resources import RECIPE_GROUPS, config_root, resolve_config
from .schema import TASKS, RunConfig
from .validate import closest, config_error, show_value, suggest, validate_config

__all__ = [
    "load_config",
    "with_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "config_hash",
    "hashed_content",
    "HASH_EXCLUDED",
    "HASH_OMITTED_AT_DEFAULT",
]

PathLike = Union[str, "os.PathLike[str]"]

# Fields that never change a run's results, left out of config_hash: where the run is stored,
# how often it logs, how often it checkpoints (a resumed run equals an uninterrupted one),
# whether missing data may be downloaded, and whether metrics are mirrored to TensorBoard. The
# sections of the tasks a run does not train, and model.embedding_size outside the language task,
# are left out as well (see hashed_content).
HASH_EXCLUDED: tuple[str, ...] = (
    "out_dir", "train.log_every", "train.checkpoint_every", "language.download", "train.tensorboard",
)
# Keys added after run directories were published: left out of config_hash while they hold their
# schema default (the behaviour every earlier run had), so those runs keep their hashes; any other
# value is hashed like every key. A key added later belongs here when its default is the earlier
# behaviour (regularizer.mean_matched and pruning.lottery_schedule are not: their defaults changed
# what earlier runs did, so they are always hashed).
HASH_OMITTED_AT_DEFAULT: tuple[str, ...] = (
    "navigation.place_cell_tuning",
    "navigation.start_tuning",
    "navigation.velocity_units",
    "model.recurrent_init",
    "model.recurrent_init_scale",
    "regularizer.invert",
    "regularizer.embedding_optimizer",
    "regularizer.embedding_grad_decay",
    "regularizer.embedding_init_scale",
    "pruning.lottery_embedding",
    "train.stabilise_epochs",
)

_KEY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_RESOLVER_RE = re.compile(r"\$\{[^}]*:")  # "${name:" starts a resolver call, e.g. ${oc.env:HOME}
_TYPE_TEXT = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "List[str]": "a list of strings",
    "List[float]": "a list of numbers",
}


def _schema_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def section_class(f: dataclasses.Field) -> type | None:
    """The dataclass of a section field, or None for a leaf field."""
    factory = f.default_factory
    if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
        return factory  # type: ignore[return-value]
    return None


def _all_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    for name, f in _schema_fields(cls).items():
        sub = section_class(f)
        keys.extend(_all_keys(sub, f"{prefix}{name}.") if sub else [f"{prefix}{name}"])
    return keys


def _field_at(full_key: str) -> dataclasses.Field | None:
    cls: type | None = RunConfig
    f = None
    for part in full_key.split("."):
        if cls is None or part not in _schema_fields(cls):
            return None
        f = _schema_fields(cls)[part]
        cls = section_class(f)
    return f


def type_text(annotation: str) -> str:
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        return type_text(annotation[len("Optional[") : -1]) + " or null"
    return _TYPE_TEXT.get(annotation, annotation)


def _unknown_key_message(key: str, siblings: Sequence[str], prefix: str) -> str:
    full = prefix + key
    best = closest(key, siblings)
    if best is not None:
        hint = f" (did you mean {prefix}{best}?)"
    else:  # a key of another section written in the wrong place, e.g. "target" for pruning.target
        same_leaf = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == key]
        hint = f" (did you mean {same_leaf[0]}?)" if same_leaf else ""
    return f"{full} is not a known key{hint}; allowed keys here: {', '.join(siblings)}"


def _check_structure(data: Mapping[Any, Any], cls: type, prefix: str, source: str) -> None:
    """Reject unknown keys, sections given as values and values given as sections."""
    fields = _schema_fields(cls)
    for key, value in data.items():
        if not isinstance(key, str):
            raise config_error(f"{prefix}{key!s} is not a valid key (keys must be strings) (in {source})")
        if key not in fields:
            raise config_error(_unknown_key_message(key, list(fields), prefix) + f" (in {source})")
        sub = section_class(fields[key])
        full = prefix + key
        if sub is not None:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise config_error(
                    f"{full} = {show_value(value)} must be a section (a mapping such as {full}.<key>: value); "
                    f"allowed keys: {', '.join(_schema_fields(sub))} (in {source})"
                )
            _check_structure(value, sub, full + ".", source)
        else:
            if isinstance(value, Mapping):
                allowed = type_text(str(fields[key].type))
                raise config_error(f"{full} is a value, not a section; allowed: {allowed} (in {source})")
            _check_no_resolver(full, value, source)


def _check_no_resolver(key: str, value: Any, source: str) -> None:
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, str) and _RESOLVER_RE.search(item):
            raise config_error(
                f"{key} = {show_value(item)} calls a resolver; resolvers (${{name:...}}) are not allowed "
                f"in configs, write the value itself (in {source})"
            )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        where = "is a directory, not a file" if path.is_dir() else "does not exist"
        hint = ""
        if not path.is_dir() and _KEY_RE.match(str(path)) and path.suffix not in (".yaml", ".yml"):
            hint = f", or write an override as key=value (e.g. {path}=...)"  # a key whose '=' was forgotten
        raise config_error(
            f"config file {str(path)!r} {where}; pass the path of a YAML file (e.g. configs/adding.yaml) "
            f"or the name of a shipped config (e.g. adding, tiny, regularizer/l1){hint}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise config_error(f"config file {str(path)!r} cannot be read: {exc}") from exc
    try:
        data = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise config_error(f"config file {str(path)!r} is malformed YAML{where}: {problem}") from exc
    except OmegaConfBaseException as exc:
        raise config_error(f"config file {str(path)!r} is malformed: {str(exc).splitlines()[0]}") from exc
    if not OmegaConf.is_dict(data):
        raise config_error(
            f"config file {str(path)!r} must hold a mapping of keys (e.g. 'task: adding'), not a {type(data).__name__}"
        )
    return OmegaConf.to_container(data, resolve=False)  # type: ignore[return-value]


def _layers_of_file(path: Path, stack: tuple[Path, ...]) -> list[tuple[str, dict[str, Any]]]:
    """The (source, data) layers of ``path``: its ``defaults`` first (recursively), then itself."""
    resolved = path.resolve()
    if resolved in stack:
        chain = " -> ".join(str(p) for p in (*stack, resolved))
        raise config_error(f"defaults form a cycle: {chain}; remove one of the includes")
    data = _read_yaml(path)
    defaults = data.pop("defaults", [])
    if defaults is None:
        defaults = []
    if isinstance(defaults, str):
        defaults = [defaults]
    if not isinstance(defaults, list) or not all(isinstance(d, str) and d for d in defaults):
        raise config_error(
            f"defaults = {show_value(defaults)} must be a list of YAML paths relative to {str(path)!r} (in {path})"
        )
    layers: list[tuple[str, dict[str, Any]]] = []
    for name in defaults:
        layers.extend(_layers_of_file(path.parent / name, (*stack, resolved)))
    layers.append((str(path), data))
    return layers


def _override_layer(item: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(item, str) or "=" not in item:
        raise config_error(f"override {show_value(item)} is not of the form key=value (e.g. pruning.target=0.9)")
    key, value = item.split("=", 1)
    key = key.strip()
    if not _KEY_RE.match(key):
        raise config_error(
            f"override {item!r} has an invalid key {key!r}; write a dotted key such as pruning.target=0.9"
        )
    if key == "defaults":
        raise config_error("override 'defaults=...' is not allowed; pass the extra YAML files as config paths")
    try:
        data = OmegaConf.to_container(OmegaConf.from_dotlist([f"{key}={value}"]), resolve=False)
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise config_error(f"override {item!r} cannot be parsed: {str(exc).splitlines()[0]}") from exc
    return f"override {item!r}", data  # type: ignore[return-value]


def _translate(exc: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or ""
    where = f" (in {source})" if source else ""
    f = _field_at(key) if key else None
    if isinstance(exc, MissingMandatoryValue) and key:
        choices = f.metadata.get("choices") if f is not None else None
        allowed = f"; allowed: {', '.join(map(str, choices))}" if choices else ""
        return config_error(f"{key} is missing{allowed}{where}")
    if isinstance(exc, ValidationError) and f is not None:
        value = getattr(exc, "value", None)
        allowed = type_text(str(f.type))
        if value is None and "None" in str(exc):
            return config_error(f"{key} = null is not allowed; allowed: {allowed}{where}")
        return config_error(f"{key} = {show_value(value)} has the wrong type; allowed: {allowed}{where}")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return config_error(f"{key + ': ' if key else ''}{first}{where}")


def _merge_layers(layers: Sequence[tuple[str, Mapping[str, Any]]], check_hardware: bool) -> RunConfig:
    merged = OmegaConf.structured(RunConfig)
    for source, data in layers:
        _check_structure(data, RunConfig, "", source)
        try:
            merged = OmegaConf.merge(merged, data)
        except OmegaConfBaseException as exc:
            raise _translate(exc, source) from exc
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _translate(exc, "") from exc
    return validate_config(cfg, check_hardware=check_hardware)  # type: ignore[arg-type]


def load_config(
    paths: Sequence[PathLike] | PathLike,
    overrides: Sequence[str] | str = (),
    *,
    check_hardware: bool = True,
) -> RunConfig:
    """Merge the YAML ``paths`` (later wins), then ``key=value`` ``overrides``, and validate.

    ``check_hardware=False`` skips the check that a requested CUDA device exists here.
    Raises ConfigError (one line naming the key) for any problem; reads files only.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if isinstance(overrides, str):
        overrides = [overrides]
    layers: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"config paths must be str or Path, got {type(p).__name__}: {p!r}")
        layers.extend(_layers_of_file(resolve_config(p), ()))
    overridden: list[tuple[str, str]] = []  # (dotted key, source) of every key=value override
    for item in overrides:
        recipe = _recipe_file(item)
        if recipe is not None:
            layers.extend(_layers_of_file(recipe, ()))
            continue
        source, data = _override_layer(item)
        layers.append((source, data))
        overridden.extend((key, source) for key in _dotted_keys(data))
    cfg = _merge_layers(layers, check_hardware)
    for key, source in overridden:
        owner = task_of_key(key)
        if owner is not None and owner != cfg.task:
            raise config_error(
                f"{key} applies to task {owner!r}, but this run trains {cfg.task!r}, so it would have no effect "
                f"(in {source}); remove it, or set task={owner}"
            )
    return cfg


_SCALAR_NODES = {"float": FloatNode, "int": IntegerNode, "str": StringNode, "bool": BooleanNode}


def with_overrides(cfg: RunConfig, overrides: Sequence[str], *, check_hardware: bool = True) -> RunConfig | None:
    """``cfg`` with the ``key=value`` ``overrides`` applied and validated, without merging YAML again.

    Values are typed as :func:`load_config` types them (the same parser and OmegaConf's node
    conversion), so the result equals (and hashes like) loading the files with these overrides
    last. Only plain scalar keys (``pruning.target``, ``train.seed``, ``task``...) take this path;
    for any other override (a recipe, a list, an optional value) the result is None: load in full.
    """
    changes: dict[str, Any] = {}
    for item in overrides:
        if _recipe_file(item) is not None:
            return None
        _, data = _override_layer(item)
        (key,) = _dotted_keys(data)
        f = _field_at(key)
        if f is None or str(f.type) not in _SCALAR_NODES or key.count(".") > 1:
            return None
        value: Any = data
        for part in key.split("."):
            value = value[part]
        try:
            changes[key] = _SCALAR_NODES[str(f.type)]().validate_and_convert(value)
        except OmegaConfBaseException:
            return None
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in changes.items():
        section, _, leaf = key.partition(".")
        if leaf:
            sections.setdefault(section, {})[leaf] = value
        else:
            top[key] = value
    replaced = dataclasses.replace(
        cfg, **top, **{name: dataclasses.replace(getattr(cfg, name), **leaves) for name, leaves in sections.items()}
    )
    return validate_config(replaced, check_hardware=check_hardware)


def task_of_key(key: str) -> str | None:
    """The task a dotted key belongs to (``adding.seq_len`` -> adding, ``model.embedding_size`` ->
    language), or None for a shared key."""
    from ..tasks.registry import TASKS as TASK_CLASSES  # torch: only once a config is read

    section, _, rest = key.partition(".")
    if section in TASKS:
        return section
    if section != "model":
        return None
    return next((name for name, task in TASK_CLASSES.items() if rest in task.model_keys), None)


def _dotted_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            keys.extend(_dotted_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _recipe_file(item: Any) -> Path | None:
    """The recipe YAML of a group override such as ``regularizer=torus_dog``; None for other overrides."""
    if not isinstance(item, str) or "=" not in item:
        return None
    key, value = (part.strip() for part in item.split("=", 1))
    if key not in RECIPE_GROUPS:
        return None
    recipes = sorted(p.stem for p in (config_root() / key).glob("*.yaml"))
    if value not in recipes:
        raise config_error(
            f"override {item!r}: {value!r} is not a {key} recipe{suggest(value, recipes)}; allowed: "
            f"{', '.join(recipes)} (or set single keys, e.g. {key}.{'kind' if key == 'regularizer' else 'method'}=...)"
        )
    return config_root() / key / f"{value}.yaml"


def config_from_dict(
    data: Mapping[str, Any], *, check_hardware: bool = True, source: str = "a mapping"
) -> RunConfig:
    """Build and validate a RunConfig from a (possibly partial) nested mapping."""
    if not isinstance(data, Mapping):
        raise TypeError(f"config_from_dict expects a mapping, got {type(data).__name__}")
    return _merge_layers([(source, dict(data))], check_hardware)


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as nested plain dicts, lists and scalars (schema order)."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"expected a RunConfig, got {type(cfg).__name__}")
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: RunConfig) -> str:
    """The config as YAML text that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def hashed_content(cfg: RunConfig) -> dict[str, Any]:
    """The part of the config that determines results (what :func:`config_hash` digests).

    Drops :data:`HASH_EXCLUDED`, the keys of :data:`HASH_OMITTED_AT_DEFAULT` that hold their
    default, the sections of the tasks other than ``cfg.task``, and the ``model`` keys of the other
    tasks (``model.embedding_size`` unless the task is language).
    """
    from ..tasks.registry import task_class  # torch: only once a config is read

    data = config_to_dict(cfg)
    defaults = config_to_dict(RunConfig(task=cfg.task))
    for key in HASH_EXCLUDED + HASH_OMITTED_AT_DEFAULT:
        *parents, leaf = key.split(".")
        node, default = data, defaults
        for part in parents:
            node, default = node[part], default[part]
        if key in HASH_EXCLUDED or node.get(leaf) == default[leaf]:
            node.pop(leaf, None)
    for task in TASKS:
        if task != cfg.task:
            data.pop(task, None)
            for key in task_class(task).model_keys:
                data["model"].pop(key, None)
    return data


def config_hash(cfg: RunConfig) -> str:
    """12 hex characters of sha256 over the sorted JSON of :func:`hashed_content`."""
    canonical = json.dumps(hashed_content(cfg), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
