"""Config-driven training end to end at tiny sizes: loss falls, pruning, regularisers, optimisers,
resume equivalence, divergence, evaluation, the Python API and reuse of finished runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import moduli
from moduli.cli import main as cli_main
from moduli.config import RunConfig, load_config
from moduli.run_dir import RunDir
from moduli.training import DivergenceError, Trainer, run_config
from moduli import tasks as training_tasks

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = str(ROOT / "data" / "tiny-wikitext")

# Settings under which each task's training loss falls clearly within 3 epochs of 20 steps.
LEARNS = {
    "navigation": ["optim.lr=3e-2", "navigation.place_cell_sigma=0.3"],
    "adding": ["optim.lr=1e-2"],
    "language": ["optim.lr=5.0"],
}
TIMING_FIELDS = {"steps_per_s", "wall_time_s"}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(tmp_path: Path, task: str, *overrides: str, extra_files: tuple[str, ...] = ()) -> RunConfig:
    """The task's config at tiny sizes, stored under ``tmp_path``."""
    files = [ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"]
    files += [ROOT / "configs" / f for f in extra_files]
    base = [f"out_dir={tmp_path}"] + ([f"language.data_dir={TINY_DATA}"] if task == "language" else [])
    return load_config(files, base + list(overrides))


def checkpoint(cfg: RunConfig) -> dict:
    payload = torch.load(RunDir.path_for(cfg) / "checkpoints" / "last.pt", weights_only=True)
    return payload["state"]


def rows_without_timing(cfg: RunConfig) -> list[dict]:
    records = RunDir(RunDir.path_for(cfg), cfg).read_metrics()
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


# ---------------------------------------------------------------------------------- basic runs
@pytest.mark.parametrize("task", ["navigation", "adding", "language"])
def test_tiny_run_learns_and_writes_its_run_directory(tmp_path, task):
    cfg = tiny(tmp_path, task, "train.epochs=3", "train.steps_per_epoch=20", "pruning.method=none", *LEARNS[task])
    summary = run_config(cfg, quiet=True)
    run = RunDir(RunDir.path_for(cfg), cfg)

    assert {"metric", "value", "per_matrix_sparsity", "sparsity", "wall_time_s", "steps"} <= summary.keys()
    assert summary["metric"] == {"navigation": "error_cm", "adding": "mse", "language": "perplexity"}[task]
    assert math.isfinite(summary["value"]) and summary["value"] == summary["valid"][summary["metric"]]
    assert summary["steps"] == 60 and summary["sparsity"] == 0.0
    assert set(summary["per_matrix_sparsity"]) == set(run_dir_model_names(cfg))
    if task == "language":
        assert math.isfinite(summary["test"]["perplexity"])

    df = run.metrics()
    train = df[df["split"] == "train"]
    assert len(train) == 60 and list(train["step"]) == list(range(1, 61))  # tiny.yaml logs every step
    assert list(df[df["split"] == "valid"]["epoch"]) == [0, 1, 2]
    first, last = train["loss"].iloc[:10].mean(), train["loss"].iloc[-10:].mean()
    assert last < first - {"navigation": 0.005, "adding": 0.3, "language": 1.0}[task], (first, last)

    assert run.config_path.is_file() and load_config([run.config_path]) == cfg
    env = json.loads(run.environment_path.read_text())
    assert env["torch"] == torch.__version__
    state = checkpoint(cfg)
    assert state["epoch"] == 2 and state["step"] == 60
    assert set(state["model"]) >= set(summary["per_matrix_sparsity"])
    assert run.status == "finished"


def test_language_vocabulary_cap_sizes_the_model_and_is_reported(tmp_path):
    cfg = tiny(tmp_path, "language", "train.epochs=1", "train.steps_per_epoch=3", "language.max_vocab=40")
    summary = run_config(cfg, quiet=True)
    state = checkpoint(cfg)
    assert state["model"]["decoder.weight"].shape[0] == 40
    assert state["model"]["embedding.weight"].shape[0] == 40
    assert "vocabulary capped at the 40 most frequent training words" in summary["data"]
    assert math.isfinite(summary["test"]["perplexity"])


def test_navigation_baselines_match_the_evaluation_stream(tmp_path):
    # 256 cells: with tiny.yaml's 32, far positions give tied top activations (an arbitrary top-3).
    cfg = tiny(tmp_path, "navigation", "train.seed=3", "navigation.num_place_cells=256")
    task = training_tasks.NavigationTask(cfg, torch.device("cpu"), 3, None)

    class StartPredictor(torch.nn.Module):  # answers the start position at every step
        def forward(self, velocity, start_activation):
            return start_activation.log().expand(velocity.shape[0], -1, -1)

    task.model = StartPredictor()
    refs = training_tasks.navigation_baselines(cfg, seed=3)
    assert refs["start"] == pytest.approx(task.evaluate()["error_cm"], rel=1e-6)
    # Independent draw of the same evaluation trajectories for the centre and true-code references.
    gen = torch.Generator().manual_seed(3 + training_tasks.EVAL_SEED_OFFSET)
    centre, true = [], []
    for _ in range(cfg.navigation.eval_batches):
        traj = task.trajectories.sample(cfg.navigation.eval_batch_size, generator=gen)
        centre.append(float(torch.linalg.vector_norm(traj.position, dim=-1).mean()) * 100)
        top = task.place_cells.activation(traj.position).topk(3, dim=-1).indices
        decoded = task.place_cells.centres[top].mean(dim=-2)
        true.append(float((decoded - traj.position).norm(dim=-1).mean()) * 100)
    assert refs["centre"] == pytest.approx(sum(centre) / len(centre), rel=1e-6)
    assert refs["true"] == pytest.approx(sum(true) / len(true), rel=1e-6)
    assert refs["true"] < refs["start"] < refs["centre"]
    # The loss references: ln(cells) for a constant prediction; the targets' entropy, which the
    # task's own loss reaches when the logits are the log-targets.
    assert refs["loss_uniform"] == pytest.approx(math.log(256))
    gen = torch.Generator().manual_seed(3 + training_tasks.EVAL_SEED_OFFSET)
    floors = []
    for _ in range(cfg.navigation.eval_batches):
        target = task.place_cells.activation(task.trajectories.sample(cfg.navigation.eval_batch_size, generator=gen).position)
        floors.append(float(training_tasks.navigation_loss(target.clamp_min(1e-30).log(), target)))
    assert refs["loss_floor"] == pytest.approx(sum(floors) / len(floors), rel=1e-5)
    assert refs["loss_floor"] < refs["loss_uniform"]


def test_language_baselines_match_an_independent_count(tmp_path):
    from collections import Counter

    cfg = tiny(tmp_path, "language", "language.max_vocab=60")
    refs = training_tasks.language_baselines(cfg)
    corpus, _ = training_tasks.language_corpus(cfg)
    counts = Counter(corpus.train.tolist())
    total = corpus.train.numel() + 60
    nll = -sum(math.log((counts[w] + 1) / total) for w in corpus.test.tolist()) / corpus.test.numel()
    assert refs == {"unigram": pytest.approx(math.exp(nll), rel=1e-9), "uniform": 60.0}


def run_dir_model_names(cfg: RunConfig) -> list[str]:
    return list(Trainer(cfg, RunDir(RunDir.path_for(cfg), cfg), quiet=True).model.prunable_names())


# ---------------------------------------------------------------------------------- pruning
def _pruned_sizes(cfg: RunConfig) -> dict[str, int]:
    state = checkpoint(cfg)
    return {name: mask.numel() for name, mask in state["pruner"]["masks"].items()}


@pytest.mark.parametrize("target", [0.9, 0.75])
def test_magnitude_linear_ramp_reaches_exact_target_and_zeroes_weights(tmp_path, target):
    cfg = tiny(tmp_path, "navigation", "train.epochs=3", "pruning.method=magnitude", "pruning.schedule=linear",
               f"pruning.target={target}", "regularizer.kind=none")
    summary = run_config(cfg, quiet=True)
    sizes = _pruned_sizes(cfg)
    n = sum(sizes.values())
    assert set(sizes) == set(run_dir_model_names(cfg))
    assert summary["sparsity"] == round(target * n) / n
    per_matrix = summary["per_matrix_sparsity"]
    pruned = sum(per_matrix[name] * size for name, size in sizes.items())
    assert round(pruned) == round(target * n)

    # the ramp: 0 during epoch 0, target/2 during epoch 1, the target during epoch 2
    df = RunDir(RunDir.path_for(cfg), cfg).metrics()
    valid = df[df["split"] == "valid"].set_index("epoch")["sparsity"]
    assert valid[0] == 0.0
    assert valid[1] == pytest.approx(round(target / 2 * n) / n, abs=1e-12)
    assert valid[2] == round(target * n) / n

    state = checkpoint(cfg)
    for name, mask in state["pruner"]["masks"].items():
        weight = state["model"][name]
        assert torch.all(weight[~mask] == 0), name
        assert 1.0 - mask.float().mean().item() == pytest.approx(per_matrix[name], abs=1e-12)


def test_random_and_moduli_keep_magnitudes_per_matrix_counts_with_other_masks(tmp_path):
    # one-shot at the last epoch: up to then the three runs train identical weights, so the magnitude
    # reference that fixes the per-matrix counts is the same in all three
    common = ("train.epochs=2", "pruning.schedule=oneshot", "pruning.target=0.8")
    runs = {}
    for method in ("magnitude", "random", "moduli"):
        cfg = tiny(tmp_path, "adding", *common, f"pruning.method={method}")
        runs[method] = (cfg, run_config(cfg, quiet=True), checkpoint(cfg))
    _, mag_summary, mag_state = runs["magnitude"]
    n = sum(m.numel() for m in mag_state["pruner"]["masks"].values())
    for method in ("random", "moduli"):
        _, summary, state = runs[method]
        assert summary["per_matrix_sparsity"] == mag_summary["per_matrix_sparsity"], method
        assert summary["sparsity"] == round(0.8 * n) / n
        for name, mask in state["pruner"]["masks"].items():
            assert torch.all(state["model"][name][~mask] == 0), (method, name)
    recurrent = "rnn.weight_hh_l0"
    assert not torch.equal(runs["random"][2]["pruner"]["masks"][recurrent], mag_state["pruner"]["masks"][recurrent])
    assert not torch.equal(runs["moduli"][2]["pruner"]["masks"][recurrent], mag_state["pruner"]["masks"][recurrent])
    assert not torch.equal(runs["moduli"][2]["pruner"]["masks"][recurrent], runs["random"][2]["pruner"]["masks"][recurrent])


def test_lottery_runs_both_phases_and_reports_the_pruned_model(tmp_path):
    cfg = tiny(tmp_path, "adding", "train.epochs=2", "pruning.lottery=true", "pruning.target=0.5")
    summary = run_config(cfg, quiet=True)
    assert summary["steps"] == 2 * 2 * 5
    assert "pruned_model" in summary and math.isfinite(summary["pruned_model"]["mse"])
    df = RunDir(RunDir.path_for(cfg), cfg).metrics()
    valid = df[df["split"] == "valid"]
    assert list(valid["epoch"]) == [0, 1, 2, 3]
    assert summary["pruned_model"] == {k: valid.iloc[1][k] for k in summary["pruned_model"]}
    n = sum(m.numel() for m in checkpoint(cfg)["pruner"]["masks"].values())
    assert summary["sparsity"] == round(0.5 * n) / n
    assert list(valid["sparsity"])[1:] == [summary["sparsity"]] * 3  # the mask stays during retraining


def test_language_lottery_reports_the_pruned_models_test_perplexity(tmp_path):
    cfg = tiny(tmp_path, "language", "train.epochs=2", "train.steps_per_epoch=3", "pruning.lottery=true",
               "pruning.target=0.5", "optim.lr=5.0")
    summary = run_config(cfg, quiet=True)
    pruned = summary["pruned_model"]
    assert math.isfinite(pruned["test"]["perplexity"]) and math.isfinite(summary["test"]["perplexity"])
    assert pruned["test"]["perplexity"] != summary["test"]["perplexity"]  # before and after re-initialisation
    from moduli.reproduce.aggregate import metric_value

    assert metric_value(summary, "language", "pruned") == (pruned["test"]["perplexity"], "test")


# ---------------------------------------------------------------------------------- regularisers
@pytest.mark.parametrize(
    "recipe, overrides",
    [
        ("none.yaml", []),
        ("torus_dog.yaml", []),
        ("l1.yaml", []),
        ("mean_matched_l1.yaml", []),
        ("permuted_dog.yaml", []),
        ("learned_torus.yaml", []),
        ("learned_torus.yaml", ["regularizer.embedding_optimizer=riemannian_adam"]),
        ("torus_dog.yaml", ["regularizer.learn_embedding=true"]),
    ],
)
def test_regularizer_kinds_penalty(tmp_path, recipe, overrides):
    cfg = tiny(tmp_path, "adding", "train.epochs=1", "pruning.method=none", *overrides,
               extra_files=(f"regularizer/{recipe}",))
    run_config(cfg, quiet=True)
    df = RunDir(RunDir.path_for(cfg), cfg).metrics()
    penalty = df[df["split"] == "train"]["penalty"]
    if cfg.regularizer.kind == "none":
        assert (penalty == 0).all()
    else:
        assert (penalty > 0).all() and penalty.map(math.isfinite).all()
    state = checkpoint(cfg)
    if cfg.regularizer.embedding_optimizer == "riemannian_adam":
        assert (state["embedding_optimizer"] is not None) == cfg.regularizer.learn_embedding
    else:  # shared: learned positions are the second parameter group of the weights' optimiser
        assert state["embedding_optimizer"] is None
        assert (len(state["optimizer"]["param_groups"]) == 2) == cfg.regularizer.learn_embedding


def test_learned_embedding_moves_the_neuron_positions(tmp_path):
    cfg = tiny(tmp_path, "adding", "train.epochs=1", "pruning.method=none", extra_files=("regularizer/learned_torus.yaml",))
    trainer = Trainer(cfg, RunDir.create(cfg), quiet=True)
    before = [p.detach().clone() for p in trainer.model.embedding_parameters()]
    assert before
    trainer.run()
    after = trainer.model.embedding_parameters()
    assert any(not torch.equal(b, a.detach()) for b, a in zip(before, after))


# ---------------------------------------------------------------------------------- optimisers
@pytest.mark.parametrize("name", ["adamw", "sgd", "adam", "modular_adam", "modular_sgd"])
@pytest.mark.parametrize("task", ["navigation", "adding"])
def test_optimizers_train_with_finite_loss(tmp_path, name, task):
    lr = "0.01" if name in ("sgd", "modular_sgd", "modular_adam") else "0.001"
    cfg = tiny(tmp_path, task, "train.epochs=1", f"optim.name={name}", f"optim.lr={lr}")
    summary = run_config(cfg, quiet=True)
    df = RunDir(RunDir.path_for(cfg), cfg).metrics()
    assert df["loss"].map(math.isfinite).all() and math.isfinite(summary["value"])
    assert summary["steps"] == 5


def _weight_change(cfg: RunConfig) -> float:
    trainer = Trainer(cfg, RunDir.create(cfg), quiet=True)
    before = [p.detach().clone() for p in trainer.model.weight_parameters()]
    trainer.run()
    return math.sqrt(sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(trainer.model.weight_parameters(), before)))


def test_grad_clip_bounds_each_sgd_step(tmp_path):
    # plain SGD moves the weights by lr * (clipped gradient) per step: total change <= steps * lr * clip
    common = ("train.epochs=1", "optim.name=sgd", "optim.lr=1.0", "optim.momentum=0.0", "optim.weight_decay=0.0",
              "pruning.method=none")
    clipped = _weight_change(tiny(tmp_path, "adding", *common, "optim.grad_clip=1e-3"))
    free = _weight_change(tiny(tmp_path, "adding", *common, "optim.grad_clip=null"))
    assert 0 < clipped <= 5 * 1.0 * 1e-3 * (1 + 1e-5)
    assert free > 10 * clipped


def test_plateau_schedule_divides_the_lr_when_validation_stalls(tmp_path):
    # a vanishing lr leaves the validation loss unchanged: with patience 0 every epoch after the
    # first is a plateau, so the lr is multiplied by the factor after each evaluation from epoch 1 on
    lr, factor = 1e-12, 0.25
    cfg = tiny(tmp_path, "adding", "train.epochs=4", "optim.name=sgd", f"optim.lr={lr}", "optim.lr_schedule=plateau",
               "optim.plateau_patience=0", f"optim.plateau_factor={factor}", "pruning.method=none")
    run_config(cfg, quiet=True)
    df = RunDir(RunDir.path_for(cfg), cfg).metrics()
    lrs = df[df["split"] == "train"].groupby("epoch")["lr"].agg(["min", "max"])
    assert (lrs["min"] == lrs["max"]).all()
    assert list(lrs["min"]) == pytest.approx([lr, lr, lr * factor, lr * factor**2], rel=1e-9)

    steady = tiny(tmp_path, "adding", "train.epochs=4", "optim.name=sgd", f"optim.lr={lr}", "pruning.method=none")
    run_config(steady, quiet=True)
    sdf = RunDir(RunDir.path_for(steady), steady).metrics()
    assert (sdf[sdf["split"] == "train"]["lr"] == lr).all()


# ---------------------------------------------------------------------------------- resume
class _Interrupt(KeyboardInterrupt):
    pass


def _run_interrupted_then_resumed(cfg: RunConfig, monkeypatch, after_checkpoints: int = 1) -> dict:
    """Stop the run (as Ctrl-C would) right after its ``after_checkpoints``-th checkpoint, then rerun it."""
    original = RunDir.save_checkpoint
    saved = []

    def save_then_interrupt(self, state):
        original(self, state)
        saved.append(state["step"])
        if len(saved) == after_checkpoints:
            raise _Interrupt

    with monkeypatch.context() as m:
        m.setattr(RunDir, "save_checkpoint", save_then_interrupt)
        with pytest.raises(_Interrupt):
            run_config(cfg, quiet=True)
    run = RunDir(RunDir.path_for(cfg), cfg)
    assert saved and not run.is_finished and run.status == "interrupted"  # recorded as such, not left running
    assert checkpoint(cfg)["epoch"] == after_checkpoints - 1
    return run_config(cfg, quiet=True)


@pytest.mark.parametrize(
    "task, overrides, extra, after",
    [
        ("navigation", ["pruning.method=magnitude", "pruning.schedule=linear", "pruning.target=0.8", "optim.lr=1e-2"],
         ("regularizer/learned_torus.yaml",), 1),
        ("language", ["optim.lr=5.0", "model.dropout=0.2", "model.num_layers=2"], (), 1),
        # lottery: interrupted in the pruning phase, and in the retraining phase
        ("adding", ["pruning.lottery=true", "pruning.target=0.5", "train.epochs=2"],
         ("regularizer/learned_torus.yaml",), 1),
        ("adding", ["pruning.lottery=true", "pruning.target=0.5", "train.epochs=2"],
         ("regularizer/learned_torus.yaml",), 3),
        # stabilising epoch (positions frozen), then a lottery on the reused embedding: interrupted
        # right after the stabilising epoch, and inside the lottery phase
        ("adding", ["pruning.lottery=true", "pruning.target=0.5", "train.epochs=2", "train.stabilise_epochs=1"],
         ("regularizer/learned_torus.yaml",), 3),
        ("adding", ["pruning.lottery=true", "pruning.target=0.5", "train.epochs=2", "train.stabilise_epochs=1"],
         ("regularizer/learned_torus.yaml",), 4),
        # language lottery: the plateau schedule keeps the first training's best loss across the resume
        ("language", ["optim.lr=5.0", "pruning.lottery=true", "pruning.target=0.5", "train.epochs=2"], (), 3),
    ],
)
def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path, monkeypatch, task, overrides, extra, after):
    epochs = [] if any(o.startswith("train.epochs") for o in overrides) else ["train.epochs=3"]
    cfg_a = tiny(tmp_path / "a", task, *epochs, *overrides, extra_files=extra)
    cfg_b = tiny(tmp_path / "b", task, *epochs, *overrides, extra_files=extra)
    summary_a = run_config(cfg_a, quiet=True)
    summary_b = _run_interrupted_then_resumed(cfg_b, monkeypatch, after)

    def results(summary):
        return {k: v for k, v in summary.items() if k not in TIMING_FIELDS}

    assert summary_a["value"] == summary_b["value"]
    assert results(summary_a) == results(summary_b)
    state_a, state_b = checkpoint(cfg_a), checkpoint(cfg_b)
    assert state_a["model"].keys() == state_b["model"].keys()
    for name in state_a["model"]:
        assert torch.equal(state_a["model"][name], state_b["model"][name]), name
    rows_a, rows_b = rows_without_timing(cfg_a), rows_without_timing(cfg_b)
    assert rows_a == rows_b
    steps = [r["step"] for r in rows_b if r["split"] == "train"]
    assert steps == sorted(set(steps))  # no step logged twice


# ---------------------------------------------------------------------------------- divergence
def test_huge_lr_diverges_with_the_step_and_marks_the_run_failed(tmp_path):
    cfg = tiny(tmp_path, "adding", "train.epochs=2", "optim.name=sgd", "optim.lr=1e30", "pruning.method=none",
               "regularizer.kind=none")
    with pytest.raises(DivergenceError, match=r"at step \d+") as info:
        run_config(cfg, quiet=True)
    assert "optim.lr" in str(info.value)
    run = RunDir(RunDir.path_for(cfg), cfg)
    assert run.status == "failed" and not run.is_finished
    assert "DivergenceError" in json.loads(run.status_path.read_text())["error"]


def test_nan_loss_after_a_checkpoint_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = training_tasks.AddingTask.train_loss
    calls = []

    def nan_from_step_7(self):
        loss, extra = original(self)
        calls.append(1)
        return (loss * float("nan") if len(calls) == 7 else loss), extra

    monkeypatch.setattr(training_tasks.AddingTask, "train_loss", nan_from_step_7)
    cfg = tiny(tmp_path, "adding", "train.epochs=3")  # 5 steps per epoch: epoch 0 is checkpointed
    with pytest.raises(DivergenceError, match=r"at step 6\b"):  # 6 steps were completed before it
        run_config(cfg, quiet=True)
    run = RunDir(RunDir.path_for(cfg), cfg)
    assert run.status == "failed"
    state = checkpoint(cfg)
    assert state["epoch"] == 0 and state["step"] == 5
    assert all(torch.isfinite(t).all() for t in state["model"].values())


# ---------------------------------------------------------------------------------- evaluate, API, reuse
@pytest.mark.parametrize("task", ["adding", "language"])
def test_cli_evaluate_reproduces_the_summary_metric(tmp_path, capsys, task):
    cfg = tiny(tmp_path, task, "train.epochs=2", "pruning.target=0.5")
    summary = run_config(cfg, quiet=True)
    capsys.readouterr()
    assert cli_main(["evaluate", str(RunDir.path_for(cfg))]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["valid"][summary["metric"]] == summary["value"]
    assert result["step"] == summary["steps"]
    if task == "language":
        assert result["test"] == summary["test"]


def test_python_api_train_returns_the_summary(tmp_path):
    summary = moduli.train(
        [str(ROOT / "configs" / "adding.yaml"), str(ROOT / "configs" / "tiny.yaml")],
        ["train.epochs=1", f"out_dir={tmp_path}"],
    )
    cfg = tiny(tmp_path, "adding", "train.epochs=1")
    assert summary == RunDir(RunDir.path_for(cfg), cfg).summary()
    assert summary["steps"] == 5 and summary["metric"] == "mse"


def test_finished_run_is_read_back_without_training(tmp_path, monkeypatch):
    cfg = tiny(tmp_path, "adding", "train.epochs=1")
    first = run_config(cfg, quiet=True)

    def no_training(self):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "run", no_training)
    again = run_config(tiny(tmp_path, "adding", "train.epochs=1", "train.log_every=3"), quiet=True)
    assert again == json.loads(json.dumps(first))


def test_moduli_masks_when_magnitude_pruning_removes_a_whole_recurrent_matrix():
    """Global magnitude pruning can take W_hh to 100% (a strongly penalised W_hh is the smallest
    matrix); moduli pruning must then keep it fully pruned instead of failing."""
    from moduli.config import load_config as _load
    from moduli.training.builders import compute_masks

    cfg = _load(["configs/navigation.yaml", "configs/tiny.yaml"], ["pruning.method=moduli"]).pruning
    weights = {"big": torch.ones(4, 8), "rnn.weight_hh_l0": torch.full((4, 4), 1e-3)}
    coefficients = {"rnn.weight_hh_l0": torch.rand(4, 4, generator=torch.Generator().manual_seed(0))}
    masks = compute_masks(cfg, weights, 16 / 48, None, coefficients, torch.Generator().manual_seed(0))
    assert not masks["rnn.weight_hh_l0"].any()
    assert int((~masks["big"]).sum()) == 0
