"""Typed, validated run configurations: schema, loading/composition, hashing."""

from .load import (
    HASH_EXCLUDED,
    config_from_dict,
    config_hash,
    config_to_dict,
    config_to_yaml,
    hashed_content,
    load_config,
)
from .schema import (
    INHIBITOR_NAMES,
    MANIFOLD_NAMES,
    SMOOTH_MANIFOLDS,
    TASKS,
    AddingConfig,
    LanguageConfig,
    ModelConfig,
    NavigationConfig,
    OptimConfig,
    PruningConfig,
    RegularizerConfig,
    RunConfig,
    TrainConfig,
)
from .validate import validate_config

__all__ = [
    "HASH_EXCLUDED",
    "INHIBITOR_NAMES",
    "MANIFOLD_NAMES",
    "SMOOTH_MANIFOLDS",
    "TASKS",
    "AddingConfig",
    "LanguageConfig",
    "ModelConfig",
    "NavigationConfig",
    "OptimConfig",
    "PruningConfig",
    "RegularizerConfig",
    "RunConfig",
    "TrainConfig",
    "config_from_dict",
    "config_hash",
    "config_to_dict",
    "config_to_yaml",
    "hashed_content",
    "load_config",
    "validate_config",
]
