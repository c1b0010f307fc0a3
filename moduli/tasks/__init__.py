"""Data, losses and metrics of the three tasks: navigation, adding problem, WikiText-2."""

from .adding import BASELINE_MSE, AddingProblem, adding_loss
from .errors import DataError
from .lm_metrics import next_token_accuracy, perplexity, unigram_perplexity
from .place_cells import PlaceCells, decoding_error_cm, navigation_loss
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
    "AddingProblem",
    "Corpus",
    "DataError",
    "Dictionary",
    "PlaceCells",
    "TrajectoryGenerator",
    "Trajectories",
    "WIKITEXT2_SHA256",
    "WIKITEXT2_URL",
    "adding_loss",
    "batchify",
    "cap_vocabulary",
    "decoding_error_cm",
    "download_wikitext2",
    "get_batch",
    "load_offline_splits",
    "load_wikitext2",
    "navigation_loss",
    "next_token_accuracy",
    "perplexity",
    "unigram_perplexity",
    "unk_rate",
    "wall_avoidance",
]
