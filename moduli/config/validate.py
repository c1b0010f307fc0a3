"""Validation of a :class:`RunConfig`: choices, ranges, types and cross-field rules.

Every failure raises :class:`moduli.errors.ConfigError` with a one-line message that names the
full key, the bad value and what is allowed, e.g.
``config error: pruning.target = 1.2 is out of range; allowed: 0 <= target < 1``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigError
from .schema import EUCLIDEAN_MANIFOLDS, SMOOTH_MANIFOLDS, RunConfig

if TYPE_CHECKING:  # pragma: no cover
    from ..tasks.base import Task

__all__ = ["validate_config", "show_value", "config_error", "closest", "suggest"]

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def show_value(value: Any, limit: int = 80) -> str:
    """A short single-line rendering of ``value`` for error messages."""
    text = repr(value) if isinstance(value, str) else str(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def config_error(message: str) -> ConfigError:
    """A :class:`ConfigError` whose message is ``config error: <message>`` on one line."""
    return ConfigError("config error: " + " ".join(message.split()))


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``word`` (difflib ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate, or ``""`` if none is close."""
    best = closest(word, candidates)
    return f" (did you mean {best!r}?)" if best is not None else ""


def range_text(name: str, meta: dict[str, Any]) -> str:
    """The allowed range as text, e.g. ``0 <= target < 1`` or ``strength >= 0``."""
    lower = ("<=", meta["ge"]) if meta.get("ge") is not None else ("<", meta["gt"]) if meta.get("gt") is not None else None
    upper = ("<=", meta["le"]) if meta.get("le") is not None else ("<", meta["lt"]) if meta.get("lt") is not None else None
    if lower and upper:
        return f"{lower[1]} {lower[0]} {name} {upper[0]} {upper[1]}"
    if lower:
        return f"{name} {'>=' if lower[0] == '<=' else '>'} {lower[1]}"
    return f"{name} {upper[0]} {upper[1]}" if upper else name


def _in_range(value: float, meta: dict[str, Any]) -> bool:
    if meta.get("ge") is not None and not value >= meta["ge"]:
        return False
    if meta.get("gt") is not None and not value > meta["gt"]:
        return False
    if meta.get("le") is not None and not value <= meta["le"]:
        return False
    if meta.get("lt") is not None and not value < meta["lt"]:
        return False
    return True


def _check_type(key: str, value: Any, annotation: str) -> None:
    """Guard against values of the wrong type when a RunConfig is built directly in Python."""
    optional = annotation.startswith("Optional[")
    if value is None:
        if not optional:
            raise config_error(f"{key} = null is not allowed; give a value of type {annotation}")
        return
    base = annotation[len("Optional[") : -1] if optional else annotation
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
        "List[str]": isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value),
        "List[float]": isinstance(value, (list, tuple))
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value),
    }.get(base, True)
    if not ok:
        raise config_error(f"{key} = {show_value(value)} has the wrong type; allowed: a value of type {base}")


def _is_section(f: dataclasses.Field) -> bool:
    """True for fields holding a nested config section (a dataclass default factory)."""
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def _check_fields(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        value = getattr(obj, f.name)
        if _is_section(f) or dataclasses.is_dataclass(value):
            if not dataclasses.is_dataclass(value):
                raise config_error(f"{key} = {show_value(value)} must be a section (a mapping of keys)")
            _check_fields(value, key + ".")
            continue
        if value == "???":
            allowed = f.metadata.get("choices")
            hint = f"; allowed: {', '.join(map(str, allowed))}" if allowed else ""
            raise config_error(f"{key} is missing{hint}")
        _check_type(key, value, str(f.type))
        if isinstance(value, float) and not math.isfinite(value):
            raise config_error(f"{key} = {value} is not a finite number")
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            allowed = ", ".join(map(str, choices))
            raise config_error(
                f"{key} = {show_value(value)} is not an allowed choice; allowed: {allowed}"
                + suggest(str(value), map(str, choices))
            )
        if any(f.metadata.get(b) is not None for b in ("ge", "gt", "le", "lt")) and value is not None:
            if not _in_range(value, f.metadata):
                raise config_error(
                    f"{key} = {show_value(value)} is out of range; allowed: {range_text(f.name, f.metadata)}"
                )


def _check_device(device: str, precision: str, check_hardware: bool) -> None:
    if not _DEVICE_RE.match(device):
        raise config_error(
            f"train.device = {show_value(device)} is not an allowed choice; allowed: auto, cpu, cuda, cuda:N"
            + suggest(device, ["auto", "cpu", "cuda"])
        )
    if precision == "bf16" and device == "cpu":
        raise config_error("train.precision = 'bf16' needs a CUDA device but train.device = 'cpu'; allowed on CPU: fp32")
    needs_cuda = device.startswith("cuda") or (precision == "bf16" and device == "auto")
    if not (check_hardware and needs_cuda):
        return
    import torch  # imported only when a CUDA device is requested

    if not torch.cuda.is_available():
        if device == "auto":
            raise config_error(
                "train.precision = 'bf16' needs CUDA, but no CUDA device is available; allowed here: fp32"
            )
        raise config_error(f"train.device = {device!r} but no CUDA device is available; allowed here: auto, cpu")
    if ":" in device:
        index, count = int(device.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise config_error(
                f"train.device = {device!r} is out of range; allowed: cuda:0 ... cuda:{count - 1}"
            )


def _check_model_for_task(cfg: RunConfig, task: type[Task]) -> None:
    """Refuse keys that act on parts the task's model does not have."""
    model = cfg.model
    if not task.multi_layer and model.num_layers != 1:
        raise config_error(
            f"model.num_layers = {model.num_layers} is not used by task {cfg.task!r}: its model has one recurrent "
            "layer (as in the paper); allowed: 1"
        )
    if not task.multi_layer and model.dropout != 0:
        raise config_error(
            f"model.dropout = {model.dropout} is not used by task {cfg.task!r}: dropout acts between stacked "
            "layers and its model has one; allowed: 0"
        )


def validate_config(cfg: RunConfig, *, check_hardware: bool = True) -> RunConfig:
    """Check every field and the cross-field rules of ``cfg``; return it unchanged.

    ``check_hardware`` also checks that a requested CUDA device exists on this machine, that the
    run's estimated memory fits its device (:mod:`moduli.config.memory`), and that
    the package ``train.tensorboard`` needs is installed (turn it off when the run will execute
    elsewhere, e.g. on a cluster node).
    Raises ConfigError (one line naming key, value and what is allowed) on the first problem.
    """
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"validate_config expects a RunConfig, got {type(cfg).__name__}; build one with load_config")
    _check_fields(cfg, "")
    from ..tasks.registry import TASKS, task_class  # torch: only once a config is checked

    task = task_class(cfg.task)
    reg, prune, train = cfg.regularizer, cfg.pruning, cfg.train

    if reg.learn_embedding and reg.kind != "moduli":
        raise config_error(
            f"regularizer.learn_embedding = true needs regularizer.kind = 'moduli', got {reg.kind!r}; "
            "allowed: set learn_embedding: false or kind: moduli"
        )
    if reg.learn_embedding and reg.manifold not in SMOOTH_MANIFOLDS:
        raise config_error(
            f"regularizer.manifold = {reg.manifold!r} has no smooth structure for learned embeddings; "
            f"allowed: {', '.join(sorted(SMOOTH_MANIFOLDS))}"
        )
    if reg.permute and reg.kind != "moduli":
        raise config_error(
            f"regularizer.permute = true needs regularizer.kind = 'moduli', got {reg.kind!r}; "
            "allowed: set permute: false or kind: moduli"
        )
    if reg.invert and reg.kind != "moduli":
        raise config_error(
            f"regularizer.invert = true needs regularizer.kind = 'moduli', got {reg.kind!r} (inverting the constant "
            "of an L1 control gives an all-zero penalty); allowed: set invert: false or kind: moduli"
        )
    if reg.invert and reg.inhibitor == "constant":
        raise config_error(
            "regularizer.invert = true with regularizer.inhibitor = 'constant' gives an all-zero penalty; "
            "allowed: invert: false, or another inhibitor"
        )
    if reg.kind == "mean_matched_l1" and reg.mean_matched == "plain_dog" and reg.inhibitor != "dog":
        raise config_error(
            f"regularizer.mean_matched = 'plain_dog' is the mean of the plain DoG, but regularizer.inhibitor = "
            f"{reg.inhibitor!r}; allowed: inhibitor: dog, or mean_matched: applied (the mean of {reg.inhibitor!r})"
        )
    if reg.embedding_init_scale != 1.0 and reg.manifold not in EUCLIDEAN_MANIFOLDS:
        raise config_error(
            f"regularizer.embedding_init_scale = {reg.embedding_init_scale:g} scales the Gaussian start on "
            f"{' / '.join(EUCLIDEAN_MANIFOLDS)}, but regularizer.manifold = {reg.manifold!r} starts uniform; "
            "allowed: 1.0 there"
        )
    if reg.learn_embedding and reg.embedding_optimizer == "shared" and cfg.optim.name not in ("adamw", "adam", "sgd"):
        raise config_error(
            f"regularizer.embedding_optimizer = 'shared' needs a plain optimiser for the positions, but optim.name = "
            f"{cfg.optim.name!r}; allowed: optim.name adamw, adam or sgd, or embedding_optimizer: riemannian_adam"
        )
    if reg.extra_l1 > 0 and not task.extra_l1:
        raise config_error(
            f"regularizer.extra_l1 = {reg.extra_l1:g} penalises the language model's embedding, decoder and input "
            f"matrices, but task = {cfg.task!r}; allowed here: 0"
        )
    if prune.lottery and prune.method == "none":
        raise config_error(
            "pruning.lottery = true needs a pruning mask but pruning.method = 'none'; "
            "allowed: lottery: false, or method: magnitude, random or moduli"
        )
    model = cfg.model
    if model.recurrent_init_scale != 1.0 and model.recurrent_init not in ("identity", "orthogonal"):
        raise config_error(
            f"model.recurrent_init_scale = {model.recurrent_init_scale} only applies to recurrent_init identity or "
            f"orthogonal, not {model.recurrent_init!r}; allowed: recurrent_init_scale: 1.0, or recurrent_init: "
            "identity or orthogonal"
        )
    if len(cfg.optim.betas) != 2 or not all(0 <= b < 1 for b in cfg.optim.betas):
        raise config_error(
            f"optim.betas = {show_value(list(cfg.optim.betas))} is out of range; allowed: two numbers in [0, 1)"
        )
    if prune.parameters is not None and (len(prune.parameters) == 0 or any(not p for p in prune.parameters)):
        raise config_error(
            f"pruning.parameters = {show_value(list(prune.parameters))} must be null (task default) "
            "or a non-empty list of parameter names"
        )
    if train.steps_per_epoch is None and not task.finite_data:
        finite = ", ".join(name for name, t in TASKS.items() if t.finite_data)
        raise config_error(
            f"train.steps_per_epoch = null (one pass over the data) only applies to task {finite}, "
            f"not {cfg.task!r}; allowed: an integer >= 1"
        )
    if prune.method == "moduli" and reg.kind != "moduli":
        raise config_error(
            f"pruning.method = 'moduli' keeps each neuron's neighbours on the manifold, but regularizer.kind = "
            f"{reg.kind!r} places no neurons on one; allowed: regularizer.kind = moduli, or pruning.method = "
            "magnitude or random"
        )
    _check_model_for_task(cfg, task)
    task.check_config(cfg)
    if not cfg.out_dir:
        raise config_error("out_dir = '' is empty; allowed: a directory path")
    _check_device(train.device, train.precision, check_hardware)
    if check_hardware:
        from .memory import check_memory

        check_memory(cfg)
    if check_hardware and train.tensorboard:
        from ..tensorboard_mirror import INSTALL_HINT, tensorboard_available

        if not tensorboard_available():
            raise config_error(
                f"train.tensorboard = true needs the tensorboard package, which is not installed; "
                f"install it with {INSTALL_HINT}, or set train.tensorboard=false"
            )
    return cfg
