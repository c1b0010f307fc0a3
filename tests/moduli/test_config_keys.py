"""Every key of the config schema, for every task, either changes the run or is refused.

For each (task, key) the table below gives a context (overrides under which the key is in use)
and a new value. A tiny run is trained with and without the new value; the test passes when the
two runs differ (parent of the run directory, summary, metric records, checkpoints written, final checkpoint,
files of the run directory) or when the new value stops with a user error before training. A key
of another task's section, given on the command line, must be refused. A schema key missing from
the table fails the test, so a new key cannot be added without saying how it takes effect.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from moduli.config import load_config
from moduli.config.load import _all_keys, task_of_key
from moduli.config.schema import TASKS
from moduli.errors import ModuliError
from moduli.run_dir import RunDir
from moduli.tasks import wikitext_download
from moduli.errors import DataError
from moduli.training import run_config

ROOT = Path(__file__).resolve().parents[2]
TIMING = {"steps_per_s", "wall_time_s"}
ANY = None  # a table entry for every task
SAVE_CHECKPOINT = RunDir.save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

# (task or ANY, key) -> (context overrides, changed value). Values are written as on the command line.
EFFECTS: dict[tuple[str | None, str], tuple[list[str], str]] = {
    (ANY, "task"): ([], "adding"),
    ("adding", "task"): ([], "navigation"),
    ("navigation", "navigation.seq_len"): ([], "12"),
    ("navigation", "navigation.box_size"): ([], "3.0"),
    ("navigation", "navigation.num_place_cells"): ([], "40"),
    ("navigation", "navigation.place_cell_sigma"): ([], "0.3"),
    ("navigation", "navigation.surround_scale"): ([], "3.0"),
    ("navigation", "navigation.eval_batches"): ([], "2"),
    ("navigation", "navigation.eval_batch_size"): ([], "20"),
    ("navigation", "navigation.place_cell_seed"): ([], "1"),
    ("navigation", "navigation.place_cell_tuning"): ([], "gaussian"),
    ("navigation", "navigation.start_tuning"): ([], "gaussian"),
    ("navigation", "navigation.velocity_units"): ([], "per_second"),
    ("adding", "adding.seq_len"): ([], "12"),
    ("adding", "adding.eval_batches"): ([], "2"),
    ("adding", "adding.eval_batch_size"): ([], "40"),
    ("digits", "digits.read"): ([], "pixels"),
    ("digits", "digits.split_seed"): ([], "1"),
    ("language", "language.data_dir"): ([], "{other_corpus}"),
    ("language", "language.offline_splits"): ([], "true"),
    ("language", "language.bptt"): ([], "6"),
    ("language", "language.eval_batch_size"): ([], "2"),
    ("language", "language.download"): (["language.data_dir={empty_dir}"], "true"),
    ("language", "language.max_vocab"): ([], "50"),
    (ANY, "model.hidden_size"): ([], "24"),
    (ANY, "model.num_layers"): ([], "2"),  # refused by navigation and adding (one recurrent layer)
    (ANY, "model.nonlinearity"): ([], "tanh"),
    ("language", "model.nonlinearity"): ([], "relu"),
    (ANY, "model.bias"): ([], "true"),
    ("adding", "model.bias"): ([], "false"),
    ("digits", "model.bias"): ([], "false"),
    ("language", "model.bias"): ([], "false"),
    ("language", "model.embedding_size"): ([], "8"),
    (ANY, "model.dropout"): ([], "0.5"),  # refused by navigation and adding
    (ANY, "model.recurrent_init"): ([], "orthogonal"),
    (ANY, "model.recurrent_init_scale"): (["model.recurrent_init=identity"], "0.5"),
    (ANY, "regularizer.kind"): ([], "l1"),
    (ANY, "regularizer.manifold"): ([], "klein"),
    (ANY, "regularizer.inhibitor"): ([], "diffusion"),
    (ANY, "regularizer.exponent"): ([], "2"),
    (ANY, "regularizer.strength"): ([], "0.5"),
    (ANY, "regularizer.reduction"): ([], "sum"),
    (ANY, "regularizer.learn_embedding"): ([], "true"),
    (ANY, "regularizer.embedding_lr"): (
        ["regularizer.learn_embedding=true", "regularizer.embedding_optimizer=riemannian_adam"], "0.05"
    ),
    (ANY, "regularizer.mean_matched"): (["regularizer.kind=mean_matched_l1"], "applied"),
    (ANY, "regularizer.invert"): ([], "true"),
    (ANY, "regularizer.embedding_optimizer"): (["regularizer.learn_embedding=true"], "shared"),
    ("adding", "regularizer.embedding_optimizer"): (["regularizer.learn_embedding=true"], "riemannian_adam"),
    (ANY, "regularizer.embedding_grad_decay"): (["regularizer.learn_embedding=true"], "0.5"),
    (ANY, "regularizer.embedding_init_scale"): (
        ["regularizer.learn_embedding=true", "regularizer.manifold=r3"], "5.0"
    ),
    (ANY, "pruning.lottery_embedding"): (["pruning.lottery=true"], "reuse"),
    ("adding", "pruning.lottery_embedding"): (["pruning.lottery=true"], "fresh"),
    (ANY, "pruning.lottery_schedule"): (["pruning.lottery=true", "optim.lr_schedule=plateau"], "fresh"),
    # at the tiny navigation's lr 1e-4 the validation loss stays at ln 32: no epoch beats another
    ("navigation", "pruning.lottery_schedule"): (
        ["pruning.lottery=true", "optim.lr_schedule=plateau", "optim.lr=0.01", "train.epochs=3"], "fresh"
    ),
    (ANY, "train.stabilise_epochs"): ([], "1"),
    (ANY, "regularizer.permute"): ([], "true"),
    (ANY, "regularizer.extra_l1"): ([], "0.5"),  # refused outside the language task
    (ANY, "pruning.method"): ([], "random"),
    (ANY, "pruning.target"): ([], "0.5"),
    (ANY, "pruning.scope"): ([], "layerwise"),
    (ANY, "pruning.schedule"): (["train.epochs=3"], "cubic"),
    (ANY, "pruning.parameters"): ([], "[rnn.weight_hh_l0]"),
    (ANY, "pruning.lottery"): ([], "true"),
    (ANY, "pruning.moduli_magnitude_weight"): (["pruning.method=moduli"], "0.0"),
    (ANY, "optim.name"): ([], "sgd"),
    ("language", "optim.name"): ([], "adam"),
    (ANY, "optim.lr"): ([], "0.003"),
    (ANY, "optim.weight_decay"): ([], "0.1"),
    (ANY, "optim.momentum"): (["optim.name=sgd"], "0.9"),
    (ANY, "optim.betas"): (["optim.name=adam"], "[0.5,0.9]"),
    (ANY, "optim.grad_clip"): ([], "0.01"),
    (ANY, "optim.lr_schedule"): ([], "plateau"),
    ("language", "optim.lr_schedule"): ([], "none"),
    (ANY, "optim.plateau_factor"): (["optim.lr_schedule=plateau"], "0.5"),
    (ANY, "optim.plateau_patience"): (["optim.lr_schedule=plateau"], "3"),
    (ANY, "train.epochs"): ([], "3"),
    (ANY, "train.steps_per_epoch"): ([], "3"),
    (ANY, "train.batch_size"): ([], "4"),
    (ANY, "train.seed"): ([], "1"),
    (ANY, "train.replicate"): ([], "1"),
    (ANY, "train.device"): ([], "cuda"),  # refused on a machine without CUDA
    (ANY, "train.precision"): ([], "bf16"),  # refused on a machine without CUDA
    (ANY, "train.checkpoint_every"): (["train.epochs=3"], "2"),
    (ANY, "train.log_every"): ([], "3"),
    (ANY, "train.tensorboard"): ([], "true"),  # adds tensorboard/ to the run directory
    (ANY, "out_dir"): ([], "{other_out}"),
}
# Refused for these tasks whatever the machine: the model has no such thing.
REFUSED = {
    ("navigation", "model.num_layers"), ("adding", "model.num_layers"),
    ("navigation", "model.dropout"), ("adding", "model.dropout"),
    ("navigation", "regularizer.extra_l1"), ("adding", "regularizer.extra_l1"),
    ("digits", "model.num_layers"), ("digits", "model.dropout"), ("digits", "regularizer.extra_l1"),
}
CUDA_ONLY = {"train.device", "train.precision"}


def _entry(task: str, key: str) -> tuple[list[str], str]:
    entry = EFFECTS.get((task, key)) or EFFECTS.get((ANY, key))
    assert entry is not None, f"{key} has no entry in EFFECTS: say how it changes a {task} run"
    return entry


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class DownloadAttempted(Exception):
    """Raised instead of downloading WikiText-2 (the tests are offline)."""


class Outcome:
    """What one tiny run produced, or the user error that stopped it."""

    def __init__(self, root: Path, items: list[str], overrides: list[str], monkeypatch) -> None:
        self.error: str | None = None
        saved: list[int] = []

        def record(run_dir, state, *args, **kwargs):
            saved.append(state["epoch"])
            return SAVE_CHECKPOINT(run_dir, state, *args, **kwargs)

        monkeypatch.setattr(RunDir, "save_checkpoint", record)
        try:
            cfg = load_config(items, overrides)
            summary = run_config(cfg, quiet=True)
        except (ModuliError, DataError, FileNotFoundError, DownloadAttempted) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        path = RunDir.path_for(cfg)
        self.run_path = path.parent.relative_to(root)  # where runs go; the hashed name changes with any key
        self.summary = {k: v for k, v in summary.items() if k not in TIMING}
        self.records = [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(path, cfg).read_metrics()]
        self.saved = saved
        self.files = sorted(p.relative_to(path).parts[0] for p in path.rglob("*"))
        self.state = torch.load(path / "checkpoints" / "last.pt", weights_only=True)["state"]

    def same_as(self, other: "Outcome") -> bool:
        if self.error or other.error:
            return self.error == other.error
        return all(
            _same(getattr(self, name), getattr(other, name))
            for name in ("run_path", "summary", "records", "saved", "files", "state")
        )


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """Directories the table's values refer to."""
    other = tmp_path / "other-corpus"
    shutil.copytree(ROOT / "data" / "tiny-wikitext", other)
    train = other / "train.txt"
    train.write_text("".join(train.read_text(encoding="utf-8").splitlines(keepends=True)[::2]), encoding="utf-8")
    (tmp_path / "empty").mkdir()
    return {"other_corpus": str(other), "empty_dir": str(tmp_path / "empty"), "other_out": str(tmp_path / "runs-b")}


@pytest.mark.parametrize("task", TASKS)
def test_every_key_changes_the_run_or_is_refused(task: str, tmp_path: Path, places, monkeypatch) -> None:
    def no_network(**kwargs):
        raise DownloadAttempted(str(kwargs.get("cache_dir")))

    monkeypatch.setattr(wikitext_download, "download_wikitext2", no_network)
    monkeypatch.setattr("moduli.tasks.wikitext.download_wikitext2", no_network)
    items = [ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"]
    base_overrides = [f"out_dir={tmp_path / 'runs-a'}"]
    cuda = torch.cuda.is_available()
    bases: dict[tuple[str, ...], Outcome] = {}
    checked = []
    for key in _all_keys():
        owner = task_of_key(key)
        if owner is not None and owner != task:
            value = _entry(owner, key)[1].format(**places)  # a value valid for its own task
            with pytest.raises(ModuliError, match=f"{key} applies to task '{owner}'"):
                load_config(items, base_overrides + [f"{key}={value}"])
            continue
        context, value = _entry(task, key)
        context = [c.format(**places) for c in context]
        new = f"{key}={value.format(**places)}"
        base_key = tuple(context)
        if base_key not in bases:
            bases[base_key] = Outcome(tmp_path, items, base_overrides + context, monkeypatch)
        base = bases[base_key]
        changed = Outcome(tmp_path, items, base_overrides + context + [new], monkeypatch)
        if (task, key) in REFUSED or (key in CUDA_ONLY and not cuda):
            assert changed.error is not None and "config error" in changed.error, (key, changed.error)
        else:
            assert not changed.same_as(base), f"{new} did not change the {task} run (context {context})"
        checked.append(key)
    assert "train.seed" in checked and len(checked) >= 40
