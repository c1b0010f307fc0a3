"""Reliability, second round: inputs the validator used to let through, messages that named the
wrong problem, a full disk mid-run, corrupt status files and the overall progress of a table.
(Concurrent runs, signals and killed workers, with real processes: test_concurrency.py.)
Each test is a row of RELIABILITY.md."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import moduli.training.progress as progress_module
from moduli.cli import main
from moduli.config import load_config
from moduli.config.memory import training_bytes
from moduli.errors import ConfigError, RunDirError
from moduli.inhibitors import get_inhibitor
from moduli.manifolds import get_manifold
from moduli.regularizer import ModuliRegularizer
from moduli.run_dir import RunDir
from moduli.tasks.place_cells import PlaceCells
from moduli.training import evaluate_run

ROOT = Path(__file__).resolve().parents[2]
ADDING = str(ROOT / "configs" / "adding.yaml")
NAVIGATION = str(ROOT / "configs" / "navigation.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused_before_writing(code, out, err, fragment, out_dir: Path):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err and out == "", err
    assert fragment in err, err
    assert not out_dir.exists() or not any(out_dir.iterdir()), "a run directory was created"


# ------------------------------------------------------------------------------ the validator
@pytest.mark.parametrize("cells", [1, 2])
def test_fewer_place_cells_than_the_decoder_reads_are_refused(capsys, tmp_path, cells):
    code, out, err = run_main(capsys, ["train", NAVIGATION, TINY, f"navigation.num_place_cells={cells}",
                                       "--out-dir", str(tmp_path / "o")])
    assert_refused_before_writing(code, out, err, f"navigation.num_place_cells = {cells} is too few", tmp_path / "o")
    assert "num_place_cells >= 3" in err


def test_three_place_cells_train_and_decode(capsys, tmp_path):
    """The smallest accepted value trains and evaluates without an error (the boundary is right)."""
    code, out, err = run_main(capsys, ["train", NAVIGATION, TINY, "navigation.num_place_cells=3",
                                       "--out-dir", str(tmp_path), "--quiet"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["metric"] == "error_cm" and np.isfinite(summary["value"]) and np.isfinite(summary["valid"]["loss"])


def test_a_dog_width_that_underflows_is_refused_with_the_smallest_safe_width(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", NAVIGATION, TINY, "navigation.place_cell_sigma=0.0001",
                                       "--out-dir", str(tmp_path / "o")])
    assert_refused_before_writing(code, out, err, "navigation.place_cell_sigma = 0.0001 is too narrow", tmp_path / "o")
    assert "underflows to 0 in float32" in err and "navigation.place_cell_tuning=gaussian" in err
    safe = float(err.split("place_cell_sigma >= ")[1].split(",")[0])
    # independent check of the boundary: below it the DoG targets of these cells contain NaN somewhere
    cfg = load_config([NAVIGATION, TINY])
    nav = cfg.navigation
    cells = PlaceCells(nav.num_place_cells, safe * 0.3, nav.surround_scale, nav.box_size, seed=nav.place_cell_seed)
    uniform = torch.rand(4096, 2, generator=torch.Generator().manual_seed(0))
    probe = torch.cat([cells.centres, (uniform - 0.5) * nav.box_size])  # the centres and random points of the box
    assert torch.isnan(cells.activation(probe)).any()
    cells = PlaceCells(nav.num_place_cells, safe * 1.01, nav.surround_scale, nav.box_size, seed=nav.place_cell_seed)
    assert torch.isfinite(cells.activation(probe)).all()


def test_a_gaussian_width_this_narrow_is_accepted_and_trains(capsys, tmp_path):
    """Plain Gaussian softmax cells do not underflow: the same width is a valid (if odd) config."""
    code, out, err = run_main(capsys, ["train", NAVIGATION, TINY, "navigation.place_cell_sigma=0.0001",
                                       "navigation.place_cell_tuning=gaussian", "navigation.start_tuning=same",
                                       "--out-dir", str(tmp_path), "--quiet"])
    assert code == 0, err
    assert np.isfinite(json.loads(out)["value"]) and np.isfinite(json.loads(out)["valid"]["loss"])


def test_a_model_that_cannot_fit_in_memory_is_refused_before_allocating(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "model.hidden_size=10000000",
                                       "--out-dir", str(tmp_path / "o")])
    assert_refused_before_writing(code, out, err, "model.hidden_size = 10000000 needs at least", tmp_path / "o")
    assert "this machine's memory" in err and "allowed here: model.hidden_size at most" in err
    largest = int(err.split("hidden_size at most ")[1].split()[0])
    load_config([ADDING, TINY], [f"model.hidden_size={largest}"])  # the size it suggests passes the check ...
    with pytest.raises(ConfigError, match=f"model.hidden_size = {largest + 1} needs at least"):
        load_config([ADDING, TINY], [f"model.hidden_size={largest + 1}"])  # ... and is the largest that does


def test_memory_estimate_counts_the_recurrent_matrices():
    """training_bytes grows with N^2 (weights, gradients, optimiser state, penalty, mask)."""
    small = load_config([ADDING, TINY], ["model.hidden_size=1000"], check_hardware=False)
    large = load_config([ADDING, TINY], ["model.hidden_size=2000"], check_hardware=False)
    assert training_bytes(small) >= 4 * 1000 * 1000 * 4  # at least weight, gradient and two Adam states
    assert 3.5 < training_bytes(large) / training_bytes(small) <= 4.0


# ------------------------------------------------------------------------------ messages
def test_evaluate_given_a_checkpoint_file_names_its_run_directory(capsys, tmp_path):
    assert main(["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    (run,) = tmp_path.glob("adding-*")
    code, out, err = run_main(capsys, ["evaluate", str(run / "checkpoints" / "last.pt")])
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"{run / 'checkpoints' / 'last.pt'} is a file, not a run directory; pass its run directory: {run}" in err
    code, out, err = run_main(capsys, ["evaluate", str(run)])  # the fix it names works
    assert code == 0 and json.loads(out)["step"] == json.loads((run / "summary.json").read_text())["steps"], err


def _regularizer(n: int = 16) -> ModuliRegularizer:
    return ModuliRegularizer(get_manifold("torus"), n, get_inhibitor("dog"))


def test_regulariser_given_a_numpy_array_says_to_convert_it():
    with pytest.raises(TypeError, match=r"as a torch\.Tensor, got a numpy\.ndarray; convert it with torch\.from_numpy"):
        _regularizer()(np.zeros((16, 16), dtype=np.float32))


def test_regulariser_given_a_layer_says_to_pass_its_weight():
    with pytest.raises(TypeError, match=r"not a module \(Linear\); pass the tensor, e\.g\. reg\(layer\.weight\)"):
        _regularizer()(nn.Linear(16, 16))
    with pytest.raises(TypeError, match=r"not a module \(RNN\); pass the tensor, e\.g\. reg\(layer\.weight_hh_l0\)"):
        _regularizer()(nn.RNN(16, 16))


def test_regulariser_given_a_weight_on_another_device_says_how_to_move_it():
    weight = torch.zeros(16, 16, device="meta")
    with pytest.raises(ValueError, match=r"the weight matrix is on meta but the regulariser is on cpu; move the regulariser"):
        _regularizer()(weight)


# ------------------------------------------------------------------------------ disk full, corrupt files
def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint_and_stops_with_one_line(capsys, tmp_path, monkeypatch):
    argv = ["train", ADDING, TINY, "train.epochs=2", "--out-dir", str(tmp_path), "--quiet"]
    saves = []
    real_save = torch.save

    def full_on_second_checkpoint(obj, f, *args, **kwargs):  # the tiny run checkpoints once an epoch
        saves.append(f)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_on_second_checkpoint)
    code, out, err = run_main(capsys, argv)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "no space left on the device; free disk space or choose another out_dir" in err
    (run,) = tmp_path.glob("adding-*")
    assert "its checkpoint of step " in err and "is kept, train it again to resume" in err
    kept = int(err.split("its checkpoint of step ")[1].split()[0])
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    assert not list((run / "checkpoints").glob("*.tmp*")), "a partial checkpoint was left behind"
    monkeypatch.setattr(torch, "save", real_save)
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "train.epochs=2", "--out-dir", str(tmp_path)])
    assert code == 0, err
    assert f"resuming from step {kept}" in err  # the kept checkpoint loads


def test_corrupt_summary_is_reported_with_its_file_name(capsys, tmp_path):
    assert main(["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    (run,) = tmp_path.glob("adding-*")
    (run / "summary.json").write_text('{"task": "add')
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"])
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"{run / 'summary.json'} is corrupt" in err and "delete it" in err


def test_corrupt_status_of_an_unfinished_run_is_reported_with_its_file_name(tmp_path):
    """status.json is read for unfinished runs (tables, sweeps): a damaged one names itself."""
    assert main(["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"]) == 0
    (run,) = tmp_path.glob("adding-*")
    (run / "summary.json").unlink()
    (run / "status.json").write_text('{"status": "runn')
    with pytest.raises(RunDirError, match=f"{run / 'status.json'} is corrupt .*delete it"):
        RunDir.open(run).status
    (run / "status.json").write_text('{"status": "sleeping"}')
    with pytest.raises(RunDirError, match="is corrupt \\(no 'status' among"):
        RunDir.open(run).status


# ------------------------------------------------------------------------------ progress
def test_reproduce_counts_runs_over_all_groups_with_a_time_estimate(capsys, tmp_path):
    """One counter over the whole table (not restarting per group), with elapsed and left times."""
    code, _, err = run_main(capsys, ["reproduce", "adding", "--preset", "smoke", "--runs-dir", str(tmp_path / "r"),
                                     "--out", str(tmp_path / "t")])
    assert code == 0, err
    counters = [line.split("]")[0][1:] for line in err.splitlines() if line.startswith("[")]
    total = int(counters[0].split("/")[1])
    assert total > 2 and counters == [f"{i}/{total}" for i in range(1, total + 1)], counters
    timed = [line for line in err.splitlines() if line.startswith("[") and "elapsed, about " in line]
    assert timed and timed[-1].endswith("about 0 s left")



def test_progress_lines_appear_without_a_terminal_at_least_every_interval(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_module, "PROGRESS_INTERVAL_S", 0.0)
    code, _, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(tmp_path)])
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("adding: step ")]
    cfg = load_config([ADDING, TINY])
    total = cfg.train.epochs * cfg.train.steps_per_epoch
    assert len(lines) >= total // 2 and lines[-1].startswith(f"adding: step {total}/{total} (epoch {cfg.train.epochs}/")
    assert "steps/s" in lines[-1]


def test_evaluate_run_reads_the_same_run_as_the_cli(tmp_path):
    assert main(["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"]) == 0
    (run,) = tmp_path.glob("adding-*")
    assert evaluate_run(RunDir.open(run))["valid"]["loss"] == pytest.approx(
        json.loads((run / "summary.json").read_text())["valid"]["loss"], rel=1e-5)


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends():
    """A checkpoint and the record of its step are never separated by an interruption."""
    import os
    import signal

    from moduli.errors import RunInterrupted
    from moduli.interrupts import deferred, interruptible

    done = []
    with pytest.raises(RunInterrupted) as caught, interruptible():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("after the signal")  # still runs: the signal waits for the block's end
        done.append("after the block")
    assert done == ["after the signal"] and caught.value.signal_name == "SIGTERM"
