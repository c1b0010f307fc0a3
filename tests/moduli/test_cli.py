"""Tests of the moduli command line: user errors, help, and the train/evaluate/sweep paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from moduli import errors
from moduli.cli import main, split_items
from moduli.config import RunConfig
from moduli.errors import ConfigError, DataError
from moduli.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]
ADDING = str(ROOT / "configs" / "adding.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")


def fake_run_config(cfg: RunConfig, quiet: bool, wait: bool = False) -> dict:
    """Stand-in for moduli.training.run_config: a finished run with a known summary."""
    run = RunDir.create(cfg)
    run.log_metrics({"step": 1, "loss": 0.5})
    summary = {"mse": 0.125, "seed": cfg.train.seed, "quiet": quiet}
    run.write_summary(summary)
    return summary


@pytest.fixture()
def fake_training(monkeypatch):
    module = types.ModuleType("moduli.training")
    module.run_config = fake_run_config
    module.evaluate_run = lambda run: {"evaluated": str(run.path), "hash": run.config_hash}
    module.seed_groups = lambda cfgs: [[i] for i in range(len(cfgs))]  # each run trained on its own
    monkeypatch.setitem(sys.modules, "moduli.training", module)
    return module


def run_main(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- user errors ------------------------------------------------------------------------------

ERROR_CASES = [
    ("unknown key", ["foo=1"], "foo is not a known key"),
    ("misspelt key", ["pruning.targt=0.5"], "pruning.targt is not a known key (did you mean pruning.target?)"),
    ("wrong type", ["train.epochs=many"], "train.epochs = 'many' has the wrong type"),
    ("sparsity >= 1", ["pruning.target=1.0"], "pruning.target = 1.0 is out of range; allowed: 0 <= target < 1"),
    ("sparsity < 0", ["pruning.target=-0.5"], "pruning.target = -0.5 is out of range"),
    ("negative strength", ["regularizer.strength=-1"], "regularizer.strength = -1.0 is out of range"),
    ("unknown manifold", ["regularizer.manifold=donut"], "regularizer.manifold = 'donut' is not an allowed choice"),
    ("unknown inhibitor", ["regularizer.inhibitor=mexican"], "regularizer.inhibitor = 'mexican' is not an allowed"),
    ("unknown task", ["task=vision"], "task = 'vision' is not an allowed choice"),
    ("bf16 on cpu", ["train.device=cpu", "train.precision=bf16"], "train.precision = 'bf16' needs a CUDA device"),
    ("bad override syntax", ["train..epochs=3"], "override 'train..epochs=3' has an invalid key"),
    ("resolver", ["out_dir=${oc.env:HOME}"], "out_dir = '${oc.env:HOME}' calls a resolver"),
    ("permute with l1", ["regularizer.kind=l1", "regularizer.permute=true"], "regularizer.permute = true needs"),
    ("moduli mask without geometry", ["pruning.method=moduli", "regularizer=none"], "pruning.method = 'moduli' keeps"),
    ("unknown recipe", ["regularizer=torus_dogg"], "'torus_dogg' is not a regularizer recipe (did you mean 'torus_dog'?)"),
    ("key of another task", ["navigation.seq_len=12"], "navigation.seq_len applies to task 'navigation', but this run"),
    ("layers the model lacks", ["model.num_layers=2"], "model.num_layers = 2 is not used by task 'adding'"),
    ("unknown W_hh init", ["model.recurrent_init=eye"], "model.recurrent_init = 'eye' is not an allowed choice"),
    ("init scale without identity", ["model.recurrent_init_scale=0.5"], "model.recurrent_init_scale = 0.5 only applies"),
    ("unknown tuning", ["navigation.place_cell_tuning=mexican"], "navigation.place_cell_tuning = 'mexican' is not an"),
    ("unknown start tuning", ["navigation.start_tuning=flat"], "navigation.start_tuning = 'flat' is not an allowed"),
    ("unknown velocity units", ["navigation.velocity_units=cm"], "navigation.velocity_units = 'cm' is not an allowed"),
]


@pytest.mark.parametrize("case, extra, fragment", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_config_errors_exit_2_with_one_line_and_write_nothing(capsys, tmp_path, fake_training, case, extra, fragment):
    out_dir = tmp_path / "out"
    code, out, err = run_main(capsys, ["train", ADDING, TINY, *extra, "--out-dir", str(out_dir)])
    assert code == 2
    assert err.startswith("error: config error: ") and err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err and out == ""
    assert not out_dir.exists()


def test_missing_and_malformed_config_files(capsys, tmp_path, fake_training):
    out_dir = tmp_path / "out"
    code, _, err = run_main(capsys, ["train", str(tmp_path / "nope.yaml"), "--out-dir", str(out_dir)])
    assert code == 2 and "nope.yaml' does not exist" in err and err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: adding\nmodel: [unclosed\n")
    code, _, err = run_main(capsys, ["train", str(bad), "--out-dir", str(out_dir)])
    assert code == 2 and "is malformed YAML at line" in err and err.count("\n") == 1
    code, _, err = run_main(capsys, ["train", "pruning.target=0.5", "--out-dir", str(out_dir)])
    assert code == 2 and "needs at least one config file" in err
    assert not out_dir.exists()


def test_subprocess_reports_one_line_and_exit_code_2(tmp_path):
    out_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "moduli.cli", "train", ADDING, "pruning.target=1.2", "--out-dir", str(out_dir)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: config error: pruning.target = 1.2 is out of range; allowed: 0 <= target < 1\n"
    assert proc.stdout == ""
    assert not out_dir.exists() and os.listdir(tmp_path) == []


def test_debug_reraises(fake_training, tmp_path):
    with pytest.raises(ConfigError, match="pruning.target"):
        main(["train", ADDING, "pruning.target=2", "--debug", "--out-dir", str(tmp_path)])


def test_data_errors_and_registered_errors_are_user_errors(capsys, tmp_path, fake_training, monkeypatch):
    def missing_data(cfg, quiet, wait=False):
        raise DataError("data/wikitext-2/train.txt is missing;\nset language.download=true")

    monkeypatch.setattr(fake_training, "run_config", missing_data)
    code, _, err = run_main(capsys, ["train", ADDING, "--out-dir", str(tmp_path), "--quiet"])
    assert code == 2 and err == "error: data/wikitext-2/train.txt is missing; set language.download=true\n"

    class ForeignError(Exception):
        pass

    def foreign(cfg, quiet, wait=False):
        raise ForeignError("not ours")

    monkeypatch.setattr(fake_training, "run_config", foreign)
    with pytest.raises(ForeignError):  # not a user error: shows its traceback
        main(["train", ADDING, "--out-dir", str(tmp_path), "--quiet"])


def test_tasks_data_error_is_a_user_error(capsys, tmp_path, fake_training, monkeypatch):
    from moduli import tasks

    assert tasks.DataError is DataError and issubclass(DataError, errors.ModuliError)  # one error hierarchy

    def missing(cfg, quiet, wait=False):
        raise tasks.DataError("valid.txt not found in data/x; pass language.data_dir")

    monkeypatch.setattr(fake_training, "run_config", missing)
    code, _, err = run_main(capsys, ["train", ADDING, "--out-dir", str(tmp_path), "--quiet"])
    assert code == 2 and err == "error: valid.txt not found in data/x; pass language.data_dir\n"


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["evaluate", "--help"], ["sweep", "--help"]])
def test_help_shows_examples(capsys, argv):
    code, out, _ = run_main(capsys, argv)
    assert code == 0 and "examples:" in out and "moduli " in out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run_main(capsys, [])
    assert code == 2 and "usage:" in err


def test_split_items():
    assert split_items(["a.yaml", "x=1", "b.yaml", "y.z=[1,2]"]) == (["a.yaml", "b.yaml"], ["x=1", "y.z=[1,2]"])


# -- working paths ----------------------------------------------------------------------------


def test_train_then_reuse_then_evaluate(capsys, tmp_path, fake_training):
    out_dir = tmp_path / "my runs"
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "train.seed=4", "--out-dir", str(out_dir)])
    assert code == 0, err
    assert json.loads(out) == {"mse": 0.125, "seed": 4, "quiet": False}
    (run_path,) = out_dir.iterdir()
    assert run_path.name.startswith("adding-") and f"run directory: {run_path}" in err
    assert RunDir.open(run_path).config.train.seed == 4

    code, out, err = run_main(capsys, ["train", ADDING, TINY, "train.seed=4", "--out-dir", str(out_dir), "--quiet"])
    assert code == 0 and json.loads(out)["quiet"] is False  # finished run: the stored summary
    assert err == ""

    code, out, _ = run_main(capsys, ["evaluate", str(run_path)])
    assert code == 0 and json.loads(out) == {"evaluated": str(run_path), "hash": run_path.name.split("-")[1]}
    code, _, err = run_main(capsys, ["evaluate", str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in err


def test_sweep_command(capsys, tmp_path, fake_training):
    out_dir = tmp_path / "out"
    csv = tmp_path / "table.csv"
    argv = ["sweep", ADDING, TINY, "--grid", "regularizer.strength=0.1,0.2", "--seeds", "0,1",
            "--out-dir", str(out_dir), "--csv", str(csv), "--quiet"]
    code, out, _ = run_main(capsys, argv)
    assert code == 0
    assert len(list(out_dir.iterdir())) == 4
    import pandas as pd

    table = pd.read_csv(csv)
    assert len(table) == 4 and set(table["status"]) == {"finished"} and list(table["seed"]) == [0, 1, 0, 1]
    assert "regularizer.strength" in out

    code, _, err = run_main(capsys, ["sweep", ADDING, "--grid", "pruning.target=0.5,1.5", "--out-dir", str(tmp_path / "o2")])
    assert code == 2 and "pruning.target = 1.5 is out of range" in err and err.count("\n") == 1
    assert not (tmp_path / "o2").exists()
    code, _, err = run_main(capsys, ["sweep", ADDING, "--grid", "pruning.target", "--out-dir", str(tmp_path / "o2")])
    assert code == 2 and "key=v1,v2" in err
    code, _, err = run_main(capsys, ["sweep", ADDING, "--slurm", "timeout_min=5", "--out-dir", str(tmp_path / "o2")])
    assert code == 2 and "--executor slurm" in err


def test_command_line_starts_without_torch():
    """`moduli --help` and usage errors import neither torch nor the plotting and table stack."""
    code = (
        "import sys, moduli.cli\n"
        "assert moduli.cli.main(['--help']) == 0\n"
        "assert moduli.cli.main(['train']) == 2\n"
        "heavy = [m for m in ('torch', 'geoopt', 'pandas', 'matplotlib', 'seaborn', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_shipped_configs_by_name_from_another_directory(capsys, tmp_path, monkeypatch, fake_training):
    monkeypatch.chdir(tmp_path)  # no configs/ here: names and repository paths resolve to the shipped files
    code, _, err = run_main(capsys, ["train", "navigation", "tiny", "regularizer=l1", "pruning=random_90", "--out-dir", "a"])
    assert code == 0, err
    (run,) = [RunDir.open(p.parent) for p in Path("a").glob("*/config.yaml")]
    cfg = run.config
    assert (cfg.task, cfg.model.hidden_size, cfg.regularizer.kind, cfg.pruning.method) == ("navigation", 32, "l1", "random")
    code, _, err = run_main(capsys, ["train", "configs/adding.yaml", "configs/tiny.yaml", "--out-dir", "b"])
    assert code == 0, err
    (run,) = [RunDir.open(p.parent) for p in Path("b").glob("*/config.yaml")]
    assert (run.config.task, run.config.model.hidden_size) == ("adding", 32)
