"""The tasks: one module each (navigation, adding, language, digits) behind one registry, and their data."""

from ..errors import DataError
from .adding import BASELINE_MSE, AddingProblem, AddingTask, adding_loss
from .base import EVAL_SEED_OFFSET, Task
from .digits import DigitsTask, digit_splits, digits_baselines
from .language import LanguageTask, language_baselines, language_corpus
from .lm_metrics import next_token_accuracy, perplexity, unigram_perplexity
from .navigation import NavigationTask, navigation_baselines
from .place_cells import PlaceCells, decoding_error_cm, navigation_loss
from .registry import TASKS, build_task, task_class
from .trajectories import TrajectoryGenerator, Trajectories, wall_avoidance
from .wikitext import (
    Corpus,
    Dictionary,
    batchify,
    cap_vocabulary,
    get_batch,
    load_offline_splits,
    load_wikitext2,
    unk_rate,
)
from .wikitext_download import WIKITEXT2_SHA256, WIKITEXT2_URL, download_wikitext2

__all__ = [
    "BASELINE_MSE",
    "EVAL_SEED_OFFSET",
    "TASKS",
    "AddingProblem",
    "AddingTask",
    "Corpus",
    "DataError",
    "Dictionary",
    "DigitsTask",
    "LanguageTask",
    "NavigationTask",
    "PlaceCells",
    "Task",
    "TrajectoryGenerator",
    "Trajectories",
    "WIKITEXT2_SHA256",
    "WIKITEXT2_URL",
    "adding_loss",
    "batchify",
    "build_task",
    "cap_vocabulary",
    "decoding_error_cm",
    "digit_splits",
    "digits_baselines",
    "download_wikitext2",
    "get_batch",
    "language_baselines",
    "language_corpus",
    "load_offline_splits",
    "load_wikitext2",
    "navigation_baselines",
    "navigation_loss",
    "next_token_accuracy",
    "perplexity",
    "task_class",
    "unigram_perplexity",
    "unk_rate",
    "wall_avoidance",
]
