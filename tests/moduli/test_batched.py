"""Seeds trained as one batched model against the same seeds trained one by one with run_config:
summaries, metrics, checkpoints; the sweep's automatic batching; fallback; resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from moduli.config import RunConfig, load_config
from moduli.run_dir import RunDir
from moduli.sweep import run_sweep
from moduli.training import Trainer, run_config
from moduli.training import batched
from moduli.models import stacked_elman
from moduli.training.batched import seed_groups, train_batched, unsupported_reason

ROOT = Path(__file__).resolve().parents[2]
TIMING = {"steps_per_s", "wall_time_s", "batched_runs"}
# Observed on CPU: bit-identical. The tolerances leave room for BLAS builds whose kernels
# round a slice of a stacked tensor differently from a standalone matrix.
RTOL, ATOL = 1e-5, 1e-6


def assert_close_record(a, b) -> None:
    """Nested records equal: the same keys and strings exactly, numbers to RTOL/ATOL."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), (a, b)
        for key in b:
            assert_close_record(a[key], b[key])
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            assert_close_record(x, y)
    elif isinstance(b, (int, float)) and not isinstance(b, bool):
        assert isinstance(a, (int, float)) and not isinstance(a, bool), (a, b)
        assert a == pytest.approx(b, rel=RTOL, abs=ATOL)
    else:
        assert a == b, (a, b)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(out: Path, task: str, seed: int, *overrides: str) -> RunConfig:
    files = [ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"]
    return load_config(files, [f"out_dir={out}", f"train.seed={seed}", *overrides])


def records(cfg: RunConfig) -> list[dict]:
    rows = RunDir(RunDir.path_for(cfg), cfg).read_metrics()
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def state(cfg: RunConfig) -> dict:
    return torch.load(RunDir.path_for(cfg) / "checkpoints" / "last.pt", weights_only=True)["state"]


def assert_same_run(a: RunConfig, b: RunConfig, summary_a: dict, summary_b: dict) -> None:
    """Run ``a`` (batched) equals run ``b`` (unbatched) up to RTOL/ATOL."""
    assert_close_record(summary_a["value"], summary_b["value"])
    assert_close_record(summary_a["valid"], summary_b["valid"])
    assert summary_a["per_matrix_sparsity"] == summary_b["per_matrix_sparsity"]
    assert summary_a["sparsity"] == summary_b["sparsity"] and summary_a["steps"] == summary_b["steps"]
    assert {k for k in summary_b if k not in TIMING} == {k for k in summary_a if k not in TIMING}
    rows_a, rows_b = records(a), records(b)
    assert [(r["step"], r["split"]) for r in rows_a] == [(r["step"], r["split"]) for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        assert_close_record(ra, rb)
    sa, sb = state(a), state(b)
    assert sa["step"] == sb["step"] and sa["epoch"] == sb["epoch"]
    assert_close_record(sa["history"]["final"], sb["history"]["final"])
    assert sa["model"].keys() == sb["model"].keys()
    for name in sb["model"]:
        torch.testing.assert_close(sa["model"][name], sb["model"][name], rtol=RTOL, atol=ATOL)
    assert sa["optimizer"]["param_groups"] == sb["optimizer"]["param_groups"]
    assert sa["optimizer"]["state"].keys() == sb["optimizer"]["state"].keys()
    for index, slot in sb["optimizer"]["state"].items():
        for key, value in slot.items():
            torch.testing.assert_close(sa["optimizer"]["state"][index][key], value, rtol=RTOL, atol=ATOL)
    assert torch.equal(sa["torch_rng"], sb["torch_rng"]) and torch.equal(sa["task"]["generator"], sb["task"]["generator"])
    assert (sa["pruner"] is None) == (sb["pruner"] is None)
    if sb["pruner"] is not None:
        for name, mask in sb["pruner"]["masks"].items():
            assert torch.equal(sa["pruner"]["masks"][name], mask)


def max_weight_difference(pairs: list[tuple[RunConfig, RunConfig]]) -> float:
    return max(
        float((state(a)["model"][n] - state(b)["model"][n]).abs().max()) for a, b in pairs for n in state(b)["model"]
    )


# ------------------------------------------------------------------------------ equality
@pytest.mark.parametrize(
    "task, seeds, overrides",
    [
        ("adding", [0, 1, 2], []),  # Adam, grad clip 0.5 per run, torus DoG, magnitude pruning to 95%
        ("navigation", [3, 4], ["pruning.method=random", "optim.grad_clip=1.0", "regularizer.kind=l1"]),
        # the navigation recipe's options: Gaussian targets, velocity per second, identity W_hh
        ("navigation", [0, 1], ["regularizer.kind=none", "pruning.method=none", "navigation.place_cell_tuning=gaussian",
                                "navigation.velocity_units=per_second", "model.recurrent_init=identity",
                                "model.recurrent_init_scale=0.9", "optim.name=adam", "optim.lr=3e-3"]),
        # Gaussian start state under DoG targets, orthogonal W_hh, torus DoG, magnitude pruning
        ("navigation", [5, 6], ["navigation.start_tuning=gaussian", "model.recurrent_init=orthogonal"]),
        ("adding", [1, 2], ["model.recurrent_init=he_uniform"]),
        ("adding", [0, 1], ["train.stabilise_epochs=2"]),  # two more epochs under the final mask
        # rows, torus DoG, magnitude pruning to 90%, clip 0.5 per run (a larger lr: the seeds' errors differ)
        ("digits", [0, 1, 2], ["optim.lr=0.02", "pruning.target=0.5"]),
        ("digits", [3, 4], ["digits.read=pixels", "pruning.method=random", "regularizer.kind=l1", "optim.lr=0.02",
                            "pruning.target=0.5"]),
        # the mean-matched L1 control: a constant that is not 1 (the applied DoG mean, about 66)
        ("navigation", [0, 1], ["regularizer.kind=mean_matched_l1", "regularizer.mean_matched=applied"]),
    ],
)
def test_batched_runs_equal_the_runs_trained_one_by_one(tmp_path, task, seeds, overrides):
    ours = [tiny(tmp_path / "batched", task, s, *overrides) for s in seeds]
    theirs = [tiny(tmp_path / "single", task, s, *overrides) for s in seeds]
    outcomes = train_batched(ours, quiet=True)
    references = [run_config(cfg, quiet=True) for cfg in theirs]
    for a, b, summary, reference in zip(ours, theirs, outcomes, references):
        assert isinstance(summary, dict) and summary["batched_runs"] == len(seeds)
        assert json.loads((RunDir.path_for(a) / "summary.json").read_text()) == summary
        assert RunDir.open(RunDir.path_for(a)).status == "finished"
        assert_same_run(a, b, summary, reference)
    assert len({s["value"] for s in outcomes}) == len(seeds)  # the seeds really differ
    assert max_weight_difference(list(zip(ours, theirs))) == 0.0  # bit-identical on CPU


def test_stacked_elman_equals_torch_rnn_per_slice():
    gen = torch.Generator().manual_seed(0)
    k, steps, batch, inputs, hidden = 3, 7, 5, 4, 24
    x = torch.randn(k, steps, batch, inputs, generator=gen)
    h0 = torch.randn(k, batch, hidden, generator=gen)
    for nonlinearity, bias in (("relu", True), ("tanh", False)):
        rnns = [torch.nn.RNN(inputs, hidden, nonlinearity=nonlinearity, bias=bias) for _ in range(k)]
        stack = lambda name: torch.stack([getattr(r, name).detach() for r in rnns])  # noqa: E731
        got = stacked_elman(
            x, h0, stack("weight_ih_l0"), stack("weight_hh_l0"),
            stack("bias_ih_l0") if bias else None, stack("bias_hh_l0") if bias else None, nonlinearity,
        )
        for i, rnn in enumerate(rnns):
            expected, _ = rnn(x[i], h0[i].unsqueeze(0))
            torch.testing.assert_close(got[i], expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="nonlinearity"):
        stacked_elman(x, None, stack("weight_ih_l0"), stack("weight_hh_l0"), None, None, "gelu")


# ------------------------------------------------------------------------------ the sweep
def _count_calls(monkeypatch):
    calls = {"batched": [], "trainer": 0}
    original_batched, original_run = batched.train_batched, Trainer.run

    def counting_batched(cfgs, quiet=False, **kwargs):
        calls["batched"].append(len(cfgs))
        return original_batched(cfgs, quiet, **kwargs)

    def counting_run(self):
        calls["trainer"] += 1
        return original_run(self)

    monkeypatch.setattr(batched, "train_batched", counting_batched)
    monkeypatch.setattr(Trainer, "run", counting_run)
    return calls


def test_sweep_batches_a_seed_grid_automatically(tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch)
    configs = [str(ROOT / "configs" / "adding.yaml"), str(ROOT / "configs" / "tiny.yaml")]
    table = run_sweep(configs, {}, [0, 1, 2], base_overrides=[f"out_dir={tmp_path}"])
    assert calls == {"batched": [3], "trainer": 0}
    assert (table["status"] == "finished").all() and (table["batched_runs"] == 3).all()
    assert table["run_dir"].nunique() == 3 and (table["steps"] == 10).all()
    reference = run_config(tiny(tmp_path / "single", "adding", 1), quiet=True)
    assert table.loc[table["train.seed"] == "1", "value"].item() == pytest.approx(reference["value"], rel=RTOL)
    again = run_sweep(configs, {}, [0, 1, 2], base_overrides=[f"out_dir={tmp_path}"])  # all finished: reused
    assert calls == {"batched": [3], "trainer": 1} and list(again["value"]) == list(table["value"])


def test_unsupported_configs_fall_back_to_sequential_training(tmp_path, monkeypatch):
    learned = ["regularizer.learn_embedding=true"]
    cfgs = [tiny(tmp_path, "adding", s, *learned) for s in (0, 1)]
    assert unsupported_reason(cfgs[0]) == "a learned embedding"
    assert unsupported_reason(tiny(tmp_path, "adding", 0)) is None
    assert seed_groups(cfgs) == [[0], [1]]
    assert seed_groups([tiny(tmp_path, "adding", s) for s in (0, 1)] + cfgs) == [[0, 1], [2], [3]]
    with pytest.raises(ValueError, match="learned embedding"):
        train_batched(cfgs)
    calls = _count_calls(monkeypatch)
    configs = [str(ROOT / "configs" / "adding.yaml"), str(ROOT / "configs" / "tiny.yaml")]
    table = run_sweep(configs, {}, [0, 1], base_overrides=[f"out_dir={tmp_path}", *learned])
    assert calls == {"batched": [], "trainer": 2} and (table["status"] == "finished").all()
    assert "batched_runs" not in table


def test_bad_groups_are_refused_before_any_work(tmp_path):
    with pytest.raises(TypeError, match="non-empty list"):
        train_batched([])
    with pytest.raises(ValueError, match="differ in more than"):
        train_batched([tiny(tmp_path, "adding", 0), tiny(tmp_path, "adding", 1, "optim.lr=0.01")])
    with pytest.raises(ValueError, match="same run"):
        train_batched([tiny(tmp_path, "adding", 0), tiny(tmp_path, "adding", 0)])
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------ resume
class _Interrupt(KeyboardInterrupt):
    pass


def test_interrupted_group_resumes_batched_and_equals_uninterrupted_runs(tmp_path, monkeypatch):
    seeds = [0, 1, 2]
    ours = [tiny(tmp_path / "batched", "adding", s, "train.epochs=3") for s in seeds]
    original_save = RunDir.save_checkpoint
    saves = []

    def save_then_interrupt(self, payload):
        original_save(self, payload)
        saves.append(self.path)
        if len(saves) == len(seeds):  # every run holds its epoch-0 checkpoint
            raise _Interrupt

    with monkeypatch.context() as m:
        m.setattr(RunDir, "save_checkpoint", save_then_interrupt)
        with pytest.raises(_Interrupt):
            train_batched(ours, quiet=True)
    assert not any(RunDir.path_for(c).joinpath("summary.json").exists() for c in ours)

    starts = []
    original_run = batched.StackedSeeds.run

    def recording_run(self):
        starts.append((self.start_epoch, self.k))
        return original_run(self)

    monkeypatch.setattr(batched.StackedSeeds, "run", recording_run)
    outcomes = train_batched(ours, quiet=True)
    assert starts == [(1, 3)]
    for seed, cfg, summary in zip(seeds, ours, outcomes):
        reference_cfg = tiny(tmp_path / "single", "adding", seed, "train.epochs=3")
        assert_same_run(cfg, reference_cfg, summary, run_config(reference_cfg, quiet=True))


def test_group_interrupted_at_different_epochs_resumes_one_by_one(tmp_path, monkeypatch):
    cfgs = [tiny(tmp_path, "adding", s) for s in (0, 1)]
    run_config(cfgs[0], quiet=True)  # finished: read back
    original_save = RunDir.save_checkpoint

    def interrupt(self, payload):
        original_save(self, payload)
        raise _Interrupt

    with monkeypatch.context() as m:
        m.setattr(RunDir, "save_checkpoint", interrupt)
        with pytest.raises(_Interrupt):
            run_config(cfgs[1], quiet=True)  # stopped after epoch 0
    cfgs.append(tiny(tmp_path, "adding", 2))  # not started
    calls = _count_calls(monkeypatch)
    outcomes = train_batched(cfgs, quiet=True)
    assert calls["trainer"] == 2 and all(isinstance(o, dict) and "batched_runs" not in o for o in outcomes)
    assert [r["step"] for r in records(cfgs[1]) if r["split"] == "train"] == list(range(1, 11))


def test_a_diverging_run_fails_alone_and_the_others_are_unaffected(tmp_path, monkeypatch):
    ours = [tiny(tmp_path / "batched", "adding", s) for s in (0, 1, 2)]
    original_losses = batched.StackedSeeds.losses

    def run_one_diverges_at_step_3(self):
        losses = original_losses(self)
        if self.step == 3:
            losses = torch.where(torch.arange(self.k) == 1, torch.tensor(float("inf")), losses)
        return losses

    monkeypatch.setattr(batched.StackedSeeds, "losses", run_one_diverges_at_step_3)
    outcomes = train_batched(ours, quiet=True)
    assert isinstance(outcomes[1], batched.DivergenceError) and "at step 3" in str(outcomes[1])
    assert RunDir.open(RunDir.path_for(ours[1])).status == "failed"
    assert [r["step"] for r in records(ours[1])] == [1, 2, 3]  # logged until it diverged
    for i in (0, 2):
        reference_cfg = tiny(tmp_path / "single", "adding", i)
        assert_same_run(ours[i], reference_cfg, outcomes[i], run_config(reference_cfg, quiet=True))


# ------------------------------------------------------------------------------ the one loop
def test_weights_turning_nan_fail_that_run_alone_before_its_checkpoint(tmp_path, monkeypatch):
    """The finite-weight check of the plain loop holds for batched runs: NaN written into run 1's
    W_hh by the last step of epoch 1 fails run 1 without a checkpoint of that epoch."""
    ours = [tiny(tmp_path / "batched", "adding", s, "train.epochs=3") for s in (0, 1, 2)]
    original_step = batched.StackedSeeds.__call__

    def poisoning_step(self, alive, will_log):
        results = original_step(self, alive, will_log)
        if self.step == 10:
            with torch.no_grad():
                self.params["rnn.weight_hh_l0"][1, 0, 0] = float("nan")
        return results

    monkeypatch.setattr(batched.StackedSeeds, "__call__", poisoning_step)
    outcomes = train_batched(ours, quiet=True)
    assert isinstance(outcomes[1], batched.DivergenceError)
    assert "the weights (rnn.weight_hh_l0) became NaN or infinite at step 10" in str(outcomes[1])
    failed = RunDir.open(RunDir.path_for(ours[1]))
    assert failed.status == "failed" and state(ours[1])["epoch"] == 0  # epoch 1 was never saved
    assert all(isinstance(outcomes[i], dict) and outcomes[i]["steps"] == 15 for i in (0, 2))


def test_progress_bar_counts_every_step_of_single_and_batched_runs(tmp_path, monkeypatch):
    from moduli.training import progress

    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.steps, self.postfix = kwargs, 0, None
            bars.append(self)

        def update(self, n):
            self.steps += n

        def set_postfix(self, *args, **kwargs):
            self.postfix = kwargs or args[0]

        def close(self):
            pass

    monkeypatch.setattr(progress, "tqdm", Bar)
    run_config(tiny(tmp_path, "adding", 0, "train.stabilise_epochs=1"), quiet=True)
    train_batched([tiny(tmp_path, "adding", s, "train.stabilise_epochs=1") for s in (1, 2)], quiet=True)
    single, group = bars
    assert single.kwargs["desc"] == "adding" and group.kwargs["desc"] == "adding x2"
    assert single.kwargs["total"] == group.kwargs["total"] == 15 and single.steps == group.steps == 15
    assert "mse" in single.postfix and "mse" in group.postfix  # the last epoch's validation metric


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (["optim.lr_schedule=plateau"], "learning-rate schedule 'plateau' (one lr per run)"),
        (["pruning.lottery=true"], "lottery retraining"),
        (["pruning.method=moduli"], "moduli pruning"),
        (["optim.name=modular_adam"], "optimiser 'modular_adam'"),
        (["regularizer.learn_embedding=true"], "a learned embedding"),
    ],
)
def test_features_the_batched_step_lacks_are_refused_by_name(tmp_path, overrides, reason):
    cfgs = [tiny(tmp_path, "adding", s, *overrides) for s in (0, 1)]
    assert unsupported_reason(cfgs[0]) == reason and seed_groups(cfgs) == [[0], [1]]
    with pytest.raises(ValueError, match="cannot be trained batched"):
        train_batched(cfgs)
    language = tiny(tmp_path, "language", 0)
    assert unsupported_reason(language) == "task 'language' (only navigation, adding, digits are batched)"
