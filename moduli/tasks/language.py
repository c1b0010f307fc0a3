"""The language task: a word-level RNN language model on WikiText-2 (or the shipped tiny corpus)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from modula_core.atom import Embed

from ..errors import DataError
from ..models import RNNLanguageModel
from ..models.elman_stack import RegularizerFactory
from ..models.modular import dense, recurrent
from ..resources import resolve_data_dir
from .base import Task, recurrent_init
from .lm_metrics import next_token_accuracy, perplexity, unigram_perplexity
from .wikitext import Corpus, batchify, cap_vocabulary, find_split, get_batch, load_offline_splits, load_wikitext2, unk_rate

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from ..config.schema import RunConfig

__all__ = ["LanguageTask", "WIKITEXT2_TRAIN_TOKENS", "WIKITEXT2_VOCAB", "language_baselines", "language_corpus"]

WIKITEXT2_VOCAB = 33_278  # WikiText-2 word vocabulary (all splits)
WIKITEXT2_TRAIN_TOKENS = 2_088_628  # WikiText-2 training tokens including <eos>


def language_corpus(cfg: RunConfig) -> tuple[Corpus, str]:
    """The corpus a language run trains on (splits and vocabulary cap of ``cfg.language``), and a
    sentence saying which text trained, validated and tested."""
    lang = cfg.language
    if lang.offline_splits:
        corpus, description = load_offline_splits(resolve_data_dir(lang.data_dir))
    else:
        corpus = load_wikitext2(resolve_data_dir(lang.data_dir), download=lang.download)
        description = f"trained on {lang.data_dir}/train, validated on valid, tested on test"
    if lang.max_vocab is not None:
        corpus = cap_vocabulary(corpus, lang.max_vocab)
        description += (
            f"; vocabulary capped at the {len(corpus.dictionary)} most frequent training words "
            f"(others are <unk>: {unk_rate(corpus.train, corpus.dictionary):.1%} of training and "
            f"{unk_rate(corpus.test, corpus.dictionary):.1%} of test tokens)"
        )
    return corpus, description


def language_baselines(cfg: RunConfig) -> dict[str, float]:
    """Test perplexities of two references on a language run's data: ``unigram`` (add-one-smoothed
    word frequencies of the training split) and ``uniform`` (the vocabulary size)."""
    corpus, _ = language_corpus(cfg)
    vocab = len(corpus.dictionary)
    return {"unigram": unigram_perplexity(corpus.train, corpus.test, vocab), "uniform": float(vocab)}


class LanguageTask(Task):
    """Word-level WikiText-2: an epoch is a pass over the training tokens in BPTT windows."""

    name, metric = "language", "perplexity"
    metric_label = "perplexity"
    has_test_split = multi_layer = extra_l1 = finite_data = True
    model_keys = ("embedding_size",)

    def __init__(self, cfg: RunConfig, device: torch.device, seed: int, regularizer: RegularizerFactory | None) -> None:
        lang = cfg.language
        corpus, self.data_description = language_corpus(cfg)
        self.bptt, self.device = lang.bptt, device
        self.train_data = batchify(corpus.train, cfg.train.batch_size).to(device)
        self.eval_data = {
            split: batchify(getattr(corpus, split), lang.eval_batch_size).to(device) for split in ("valid", "test")
        }
        self.model = RNNLanguageModel(
            len(corpus.dictionary), cfg.model.embedding_size, cfg.model.hidden_size, cfg.model.num_layers,
            cfg.model.nonlinearity, cfg.model.dropout, regularizer, bias=cfg.model.bias, **recurrent_init(cfg),
        )
        self.position, self.hidden = 0, None  # next BPTT window and the carried hidden state

    def steps_per_epoch(self, configured: int | None) -> int:
        windows = math.ceil((self.train_data.shape[0] - 1) / self.bptt)
        return windows if configured is None else min(windows, configured)

    def start_epoch(self) -> None:
        self.position, self.hidden = 0, None

    def train_loss(self) -> tuple[Tensor, dict[str, float]]:
        if self.position >= self.train_data.shape[0] - 1:
            self.position, self.hidden = 0, None
        inputs, target = get_batch(self.train_data, self.position, self.bptt)
        self.position += self.bptt
        hidden = None if self.hidden is None else self.hidden.detach()
        logits, self.hidden = self.model(inputs, hidden)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))
        return loss, {}

    @torch.no_grad()
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        data = self.eval_data[split]
        total, tokens, correct, hidden = 0.0, 0, 0.0, None
        for i in range(0, data.shape[0] - 1, self.bptt):
            inputs, target = get_batch(data, i, self.bptt)
            logits, hidden = self.model(inputs, hidden)
            n = target.numel()
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))) * n
            correct += next_token_accuracy(logits, target) * n
            tokens += n
        loss = total / tokens
        return {"loss": loss, "perplexity": perplexity(loss), "accuracy": correct / tokens}

    def state_dict(self) -> dict[str, Any]:
        return {}  # windows are read in order and every epoch restarts at 0: nothing to carry

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def summary_extras(self) -> dict[str, Any]:
        return {"data": self.data_description}

    @classmethod
    def modular_structure(cls, model: RNNLanguageModel):
        rnn, rnn_params = recurrent(model)
        embed = Embed(model.embedding.embedding_dim, model.embedding.num_embeddings)
        decoder, dec_params = dense(model.decoder)
        return decoder @ rnn @ embed, [model.embedding.weight] + rnn_params + dec_params

    # ------------------------------------------------------------------ estimates and tables
    @classmethod
    def forward_flops(cls, cfg: RunConfig) -> tuple[float, int]:
        n, layers = cfg.model.hidden_size, cfg.model.num_layers
        t, e, v = cfg.language.bptt, cfg.model.embedding_size, WIKITEXT2_VOCAB
        per_token = 2 * e * n + 2 * n * n * (layers - 1) + 2 * n * n * layers + 2 * n * v
        return t * per_token, t

    @classmethod
    def estimated_steps_per_epoch(cls, cfg: RunConfig) -> int:
        if cfg.train.steps_per_epoch is not None:
            return cfg.train.steps_per_epoch
        return max(1, WIKITEXT2_TRAIN_TOKENS // (cfg.train.batch_size * cfg.language.bptt))

    @classmethod
    def eval_sequences(cls, cfg: RunConfig) -> int:
        return WIKITEXT2_TRAIN_TOKENS // 10 // cfg.language.bptt  # validation split ~ 1/10 of the training tokens

    @classmethod
    def scale_text(cls, cfg: RunConfig) -> list[str]:
        return [f"embedding {cfg.model.embedding_size}, BPTT {cfg.language.bptt}"]

    @classmethod
    def caption_notes(cls, cfg: RunConfig, seeds: tuple[int, ...], runs: pandas.DataFrame) -> list[str]:
        data = sorted({d for d in runs.loc[runs["status"] == "finished", "data"] if d})
        refs = language_baselines(cfg)
        notes = [
            "Data: " + ("; ".join(data) if data else "no finished run") + ".",
            f"References on the same test text: the add-one-smoothed unigram model of the training text "
            f"{refs['unigram']:.1f}; uniform over the {refs['uniform']:.0f}-word vocabulary {refs['uniform']:.0f}.",
        ]
        pruned = runs[(runs["reading"] == "pruned") & (runs["status"] == "finished")]
        if (pruned["split"] == "valid").any():
            notes.append("The lottery 'pruned model' row reports validation perplexity (its run evaluates the "
                         "pruned model on the validation split only).")
        return notes

    @classmethod
    def check_data(cls, configs: list[RunConfig]) -> None:
        seen = set()
        for cfg in configs:
            lang = cfg.language
            key = (lang.data_dir, lang.offline_splits, lang.download)
            if key in seen:
                continue
            seen.add(key)
            needed = ("valid", "test") if lang.offline_splits else ("train", "valid", "test")
            missing = [s for s in needed if find_split(resolve_data_dir(lang.data_dir), s) is None]
            if missing and not (lang.download and not lang.offline_splits):
                first = resolve_data_dir(lang.data_dir) / f"{missing[0]}.txt"
                raise DataError(
                    f"language.data_dir = {lang.data_dir!r} has no {', '.join(missing)} split (no {first} or "
                    f"wiki.{missing[0]}.tokens; relative paths are "
                    "relative to the current directory, then to the toolkit's shipped files); put the WikiText-2 files there, set language.download=true, "
                    "or train offline on the valid split with language.offline_splits=true (see data/README.md)"
                )
