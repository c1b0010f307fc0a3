"""moduli plot / figures.training_curves: the curves drawn are the runs' metrics records; bad
run directories stop with one line and exit status 2."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from moduli.cli import main
from moduli.config import load_config
from moduli.errors import RunDirError
from moduli.figures import curves_frame, training_curves
from moduli.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_run(out: Path, task: str, seed: int, records: list[dict]) -> RunDir:
    """A run directory holding the given metrics records (no training)."""
    cfg = load_config([ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"],
                      [f"out_dir={out}", f"train.seed={seed}"])
    run = RunDir.create(cfg)
    for record in records:
        run.log_metrics(record)
    return run


def adding_records(scale: float) -> list[dict]:
    return [
        {"step": 5, "epoch": 0, "split": "train", "loss": 0.3 * scale, "penalty": 0.01, "sparsity": 0.0},
        {"step": 5, "epoch": 0, "split": "valid", "loss": 0.25 * scale, "mse": 0.25 * scale, "sparsity": 0.0},
        {"step": 10, "epoch": 1, "split": "train", "loss": 0.1 * scale, "penalty": 0.01, "sparsity": 0.5},
        {"step": 10, "epoch": 1, "split": "valid", "loss": 0.05 * scale, "mse": 0.05 * scale, "sparsity": 0.5},
    ]


def test_frame_holds_each_record_with_the_tasks_metric(tmp_path):
    a = fake_run(tmp_path, "adding", 0, adding_records(1.0))
    b = fake_run(tmp_path, "adding", 1, adding_records(2.0))
    frame = curves_frame([a, str(b.path)])
    assert len(frame) == 8
    assert frame["run"].nunique() == 2 and frame["run"].iloc[0].startswith(a.path.name)
    assert "seed 1" in frame["run"].iloc[4]
    valid = frame[frame["split"] == "valid"]
    assert valid["metric"].tolist() == [0.25, 0.05, 0.5, 0.1]  # mse, the adding task's metric
    assert frame[frame["split"] == "train"]["metric"].isna().all()
    assert frame["sparsity"].tolist() == [0.0, 0.0, 0.5, 0.5] * 2
    assert frame["step"].tolist() == [5, 5, 10, 10] * 2


def test_navigation_metric_is_the_decoding_error(tmp_path):
    run = fake_run(tmp_path, "navigation", 0, [
        {"step": 3, "epoch": 0, "split": "valid", "loss": 5.5, "error_cm": 80.5, "sparsity": 0.0},
    ])
    assert curves_frame([run])["metric"].tolist() == [80.5]


def test_figure_files_are_written_and_deterministic(tmp_path):
    runs = [fake_run(tmp_path / "runs", "adding", s, adding_records(1.0 + s)) for s in (0, 1)]
    paths = training_curves(runs, tmp_path / "figs")
    assert [p.name for p in paths] == ["training_curves.png", "training_curves.pdf"]
    assert paths[0].read_bytes().startswith(PNG_MAGIC) and paths[1].read_bytes().startswith(b"%PDF")
    first = [p.read_bytes() for p in paths]
    training_curves(runs, tmp_path / "figs")
    assert [p.read_bytes() for p in paths] == first


def test_cli_plots_real_runs(tmp_path, capsys, one_thread):
    from moduli.training import run_config

    cfgs = [load_config([ROOT / "configs" / "adding.yaml", ROOT / "configs" / "tiny.yaml"],
                        [f"out_dir={tmp_path / 'runs'}", f"train.seed={s}", "pruning.target=0.5"]) for s in (0, 1)]
    for cfg in cfgs:
        run_config(cfg, quiet=True)
    dirs = [str(RunDir.path_for(cfg)) for cfg in cfgs]
    assert main(["plot", *dirs, "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "out" / "training_curves.png"), str(tmp_path / "out" / "training_curves.pdf")]
    frame = curves_frame(dirs)
    records = sum((RunDir.open(d).read_metrics() for d in dirs), [])
    assert len(frame) == len(records)
    assert all(math.isclose(f, r["loss"]) for f, r in zip(frame["loss"], records))
    assert frame[frame["split"] == "train"]["sparsity"].max() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("case", ["missing", "not a run", "empty metrics", "twice", "two tasks", "out is a file"])
def test_bad_run_directories_exit_2_with_one_line(tmp_path, capsys, case):
    run = fake_run(tmp_path / "runs", "adding", 0, adding_records(1.0))
    other = fake_run(tmp_path / "runs", "navigation", 0, [{"step": 1, "split": "train", "loss": 5.0, "sparsity": 0.0}])
    empty = fake_run(tmp_path / "runs", "adding", 1, [])
    (tmp_path / "plain").mkdir()
    (tmp_path / "file").write_text("x")
    argv, message = {
        "missing": ([str(tmp_path / "nope")], "does not exist; pass a directory made by 'moduli train'"),
        "not a run": ([str(tmp_path / "plain")], "is not a run directory (no config.yaml)"),
        "empty metrics": ([str(empty.path)], "has no metrics yet (metrics.jsonl is empty or missing)"),
        "twice": ([str(run.path), str(run.path)], "is given twice; list each run once"),
        "two tasks": ([str(run.path), str(other.path)], "different tasks (adding, navigation)"),
        "out is a file": ([str(run.path), "--out", str(tmp_path / "file")], "is a file; pass a directory"),
    }[case]
    out = tmp_path / "out"
    code = main(["plot", *argv] + ([] if "--out" in argv else ["--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_error_class_for_the_python_api(tmp_path):
    empty = fake_run(tmp_path, "adding", 0, [])
    with pytest.raises(RunDirError, match="has no metrics yet"):
        training_curves([empty], tmp_path / "figs")
    with pytest.raises(TypeError, match="non-empty list of run directories"):
        training_curves(str(empty.path), tmp_path / "figs")


def test_the_command_line_module_imports_no_plotting_library():
    code = "import sys, moduli.cli; print(sorted(m for m in ('pandas', 'seaborn', 'matplotlib') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
