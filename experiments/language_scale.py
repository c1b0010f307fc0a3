"""How the language cpu preset was sized: step time against vocabulary, and which optimiser learns.

Two measurements on the offline WikiText-2 splits (``data/wikitext-2/{valid,test}.txt``), with the
model of ``configs/reproduce/language/cpu.yaml`` (3 tanh layers of 128, embedding 128, batch 20,
BPTT 35), dense and unregularised:

1. time of one training step (forward, backward, optimiser) with the full vocabulary of the two
   splits against the 5,000-word cap, median of ``--timing-steps`` steps after warm-up, both in
   this process;
2. validation perplexity after each of 4 epochs of 125 steps for three optimisers: the paper's
   SGD at lr 20 (clip 0.25, lr / 4 on a plateau), Adam at 2e-3 and Adam at 1e-3 (clip 0.25),
   beside the add-one unigram reference on the same text.

Prints two Markdown tables. Usage (about 5 minutes on one CPU thread):
``python experiments/language_scale.py [--seed 0] [--timing-steps 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from moduli.config import load_config
from moduli.reproduce.presets import PROJECT_ROOT, load_preset
from moduli.run_dir import RunDir
from moduli.training import DivergenceError, run_config
from moduli.tasks import LanguageTask, language_corpus
from moduli.tasks import unigram_perplexity

OPTIMISERS: dict[str, list[str]] = {
    "sgd lr 20 (paper)": ["optim.name=sgd", "optim.lr=20.0", "optim.lr_schedule=plateau"],
    "adam lr 2e-3": ["optim.name=adam", "optim.lr=2e-3", "optim.lr_schedule=none"],
    "adam lr 1e-3 (cpu preset)": ["optim.name=adam", "optim.lr=1e-3", "optim.lr_schedule=none"],
}
DENSE = ["configs/regularizer/none.yaml", "configs/pruning/none.yaml"]


def preset_config(extra: list[str], out_dir: Path):
    """The language cpu preset's config, dense and unregularised, with ``extra`` overrides."""
    preset = load_preset("language", "cpu")
    files = list(preset.configs) + [PROJECT_ROOT / f for f in DENSE]
    return load_config(files, list(preset.overrides) + [f"out_dir={out_dir}"] + extra)


def step_time(cfg, steps: int) -> float:
    """Median seconds of one training step of ``cfg``'s language model."""
    task = LanguageTask(cfg, torch.device("cpu"), cfg.train.seed, None)
    optimiser = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        loss, _ = task.train_loss()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if i >= 3:  # warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        capped = preset_config([f"train.seed={args.seed}"], out)
        full = preset_config([f"train.seed={args.seed}", "language.max_vocab=null"], out)
        t_full, t_capped = step_time(full, args.timing_steps), step_time(capped, args.timing_steps)
        n_full = len(language_corpus(full)[0].dictionary)
        print("| vocabulary | step time (ms) | ratio |\n|---|---:|---:|")
        print(f"| {n_full} words (all of valid + test) | {1e3 * t_full:.0f} | {t_full / t_capped:.2f} |")
        print(f"| {capped.language.max_vocab} words (cpu preset) | {1e3 * t_capped:.0f} | 1.00 |\n")

        corpus, _ = language_corpus(capped)
        unigram = unigram_perplexity(corpus.train, corpus.test, len(corpus.dictionary))
        print(f"Validation perplexity, dense, no regulariser, 4 epochs x 125 steps (unigram on test: {unigram:.1f}):\n")
        print("| optimiser | epoch 1 | epoch 2 | epoch 3 | epoch 4 |\n|---|---:|---:|---:|---:|")
        for label, overrides in OPTIMISERS.items():
            cfg = preset_config([f"train.seed={args.seed}", "train.epochs=4", "train.steps_per_epoch=125"] + overrides, out)
            try:
                run_config(cfg, quiet=True)
            except DivergenceError:
                pass  # the epochs before the divergence are in the metrics
            metrics = RunDir(RunDir.path_for(cfg), cfg).metrics()
            valid = metrics[metrics["split"] == "valid"]["perplexity"]
            print(f"| {label} | " + " | ".join(f"{v:.4g}" for v in valid) + " |")


if __name__ == "__main__":
    main()
