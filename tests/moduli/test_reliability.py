"""Bad inputs, divergence, untrusted files and reproducibility, through the command line.

Every user error prints one line ``error: ...`` naming the problem and the fix, exits with 2
(1 for a run that fails while it runs), shows no traceback, and leaves existing results
byte-identical. See RELIABILITY.md for the catalogue these tests implement.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import moduli.atomic
from moduli.cli import main
from moduli.config import load_config
from moduli.errors import CheckpointError, ConfigError
from moduli.inhibitors import get_inhibitor
from moduli.manifolds import get_manifold
from moduli.models.elman_stack import ElmanStack
from moduli.models.path_integration import PathIntegrationRNN
from moduli.regularizer import ModuliRegularizer
from moduli.run_dir import RunDir
from moduli.training import DivergenceError, Trainer, run_config

ROOT = Path(__file__).resolve().parents[2]
ADDING = str(ROOT / "configs" / "adding.yaml")
LANGUAGE = str(ROOT / "configs" / "language.yaml")
TINY = str(ROOT / "configs" / "tiny.yaml")
TIMING_FIELDS = {"wall_time_s", "steps_per_s", "start_time", "command_line"}
DIVERGING = ["optim.name=sgd", "optim.lr=1e30", "pruning.method=none", "regularizer.kind=none"]


pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, out, err, fragment, status=2):
    assert code == status, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    assert fragment in err, err


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The out_dir of one finished tiny adding run (copy it before changing anything)."""
    out = tmp_path_factory.mktemp("finished")
    assert main(["train", ADDING, TINY, "--out-dir", str(out), "--quiet"]) == 0
    return out


@pytest.fixture()
def run_copy(finished, tmp_path, capsys) -> Path:
    """A private copy of the finished run's directory (its out_dir is its parent)."""
    capsys.readouterr()
    (src,) = finished.glob("adding-*")
    dst = tmp_path / "out" / src.name
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------ usage errors
def test_config_path_is_a_directory(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", str(tmp_path), "--out-dir", str(tmp_path / "o")])
    assert_user_error(code, out, err, "is a directory, not a file; pass the path of a YAML file")
    assert not (tmp_path / "o").exists()


def test_override_without_equals_sign_suggests_key_value(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", ADDING, "pruning.target", "--out-dir", str(tmp_path / "o")])
    assert_user_error(code, out, err, "'pruning.target' does not exist")
    assert "write an override as key=value (e.g. pruning.target=...)" in err


def test_unknown_subcommand_is_a_usage_error(capsys):
    code, out, err = run_main(capsys, ["frobnicate", ADDING])
    assert code == 2 and out == "" and "invalid choice: 'frobnicate'" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("- task: adding\n- model: {}\n", "must hold a mapping of keys"),
        ("", "task is missing; allowed: navigation, adding, language"),
        ("task: adding\nmodel:\n  hidden_size: 8\n   bad_indent: 1\n", "is malformed YAML at line"),
        ("task: adding\n\tmodel: {}\n", "is malformed YAML"),
    ],
    ids=["top-level list", "empty file", "bad indentation", "tab"],
)
def test_malformed_config_files(capsys, tmp_path, content, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    code, out, err = run_main(capsys, ["train", str(bad), "--out-dir", str(tmp_path / "o")])
    assert_user_error(code, out, err, fragment)
    assert not (tmp_path / "o").exists()


def test_config_file_that_is_not_text(capsys, tmp_path):
    bad = tmp_path / "binary.yaml"
    bad.write_bytes(b"task: adding\n\xff\xfe\x00\x81")
    code, out, err = run_main(capsys, ["train", str(bad), "--out-dir", str(tmp_path / "o")])
    assert_user_error(code, out, err, "cannot be read")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["regularizer.strength=.inf"], "regularizer.strength = inf is not a finite number"),
        (["optim.lr=.nan"], "optim.lr = nan is not a finite number"),
        (["model.hidden_size=0"], "model.hidden_size = 0 is out of range; allowed: hidden_size >= 1"),
        (["train.batch_size=1.5"], "train.batch_size = 1.5 has the wrong type; allowed: an integer"),
        (["pruning.parameters=[rnn.weight_hh_l7]"], "pruning.parameters names ['rnn.weight_hh_l7'] not in the model"),
    ],
    ids=["infinite strength", "nan lr", "zero hidden size", "float batch size", "unknown pruned weight"],
)
def test_more_config_values(capsys, tmp_path, extra, fragment):
    code, out, err = run_main(capsys, ["train", ADDING, TINY, *extra, "--out-dir", str(tmp_path / "o"), "--quiet"])
    assert_user_error(code, out, err, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message on a machine without CUDA")
def test_cuda_device_without_cuda(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "train.device=cuda", "--out-dir", str(tmp_path)])
    assert_user_error(code, out, err, "train.device = 'cuda' but no CUDA device is available; allowed here: auto, cpu")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--grid", "pruning.target"], "is not of the form key=v1,v2"),
        (["--grid", "pruning.target=0.5", "--grid", "pruning.target=0.8"], "--grid pruning.target is given twice"),
        (["--seeds", "one,two"], "seeds 'one,two' must be integers"),
        (["--jobs", "0"], "jobs = 0 is out of range"),
        (["--slurm", "timeout_min=5"], "--slurm options need --executor slurm"),
        (["--grid", "pruning.target=0.5,1.5"], "pruning.target = 1.5 is out of range"),
    ],
    ids=["grid without =", "grid twice", "bad seeds", "zero jobs", "slurm option locally", "bad cell"],
)
def test_sweep_usage_errors_run_nothing(capsys, tmp_path, extra, fragment):
    out_dir = tmp_path / "o"
    code, out, err = run_main(capsys, ["sweep", ADDING, TINY, *extra, "--out-dir", str(out_dir), "--quiet"])
    assert_user_error(code, out, err, fragment)
    assert not out_dir.exists()  # every cell is validated before any run starts


def test_out_dir_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("notes")
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(blocker), "--quiet"])
    assert_user_error(code, out, err, "a file stands where a directory is needed on that path; move the file or choose another out_dir")
    assert blocker.read_text() == "notes"


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_a_missing_or_non_run_directory(capsys, tmp_path):
    code, out, err = run_main(capsys, ["evaluate", str(tmp_path / "nope")])
    assert_user_error(code, out, err, "does not exist; pass a directory made by 'moduli train'")
    code, out, err = run_main(capsys, ["evaluate", str(tmp_path)])
    assert_user_error(code, out, err, "is not a run directory (no config.yaml)")


def test_evaluate_a_run_without_checkpoint(capsys, run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    code, out, err = run_main(capsys, ["evaluate", str(run_copy)])
    assert_user_error(code, out, err, "has no checkpoint yet; train it first with `moduli train`")


# ------------------------------------------------------------------------------ damaged checkpoints
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    path.write_bytes(os.urandom(2048))


def _nan_weights(path: Path) -> None:
    payload = torch.load(path, weights_only=True)
    payload["state"]["model"]["rnn.weight_hh_l0"][0, 0] = float("nan")
    torch.save(payload, path)


def _inf_weights(path: Path) -> None:
    payload = torch.load(path, weights_only=True)
    payload["state"]["model"]["readout.weight"].fill_(float("inf"))
    torch.save(payload, path)


DAMAGES = [
    (_truncate, "is corrupt or truncated"),
    (_garble, "is corrupt or truncated"),
    (_nan_weights, "holds NaN or infinite weights (rnn.weight_hh_l0)"),
    (_inf_weights, "holds NaN or infinite weights (readout.weight)"),
]


@pytest.mark.parametrize("damage, fragment", DAMAGES, ids=["truncated", "corrupt", "nan weights", "inf weights"])
def test_damaged_checkpoint_on_evaluate_and_resume(capsys, run_copy, damage, fragment):
    checkpoint = run_copy / "checkpoints" / "last.pt"
    damage(checkpoint)
    before = tree_digest(run_copy)
    code, out, err = run_main(capsys, ["evaluate", str(run_copy)])
    assert_user_error(code, out, err, fragment)
    assert "delete it to restart the run" in err
    (run_copy / "summary.json").unlink()  # an unfinished run: train resumes from the checkpoint
    before = tree_digest(run_copy)
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(run_copy.parent), "--quiet"])
    assert_user_error(code, out, err, fragment)
    after = tree_digest(run_copy)
    assert after["checkpoints/last.pt"] == before["checkpoints/last.pt"]  # the evidence is kept
    assert after["metrics.jsonl"] == before["metrics.jsonl"]


def test_checkpoint_of_another_config(capsys, run_copy, tmp_path):
    other = tmp_path / "other"
    assert main(["train", ADDING, TINY, "train.seed=5", "--out-dir", str(other), "--quiet"]) == 0
    capsys.readouterr()
    (other_run,) = other.glob("adding-*")
    shutil.copy(other_run / "checkpoints" / "last.pt", run_copy / "checkpoints" / "last.pt")
    code, out, err = run_main(capsys, ["evaluate", str(run_copy)])
    assert_user_error(code, out, err, f"belongs to config {other_run.name.split('-')[1]}, not to this run")


# ------------------------------------------------------------------------------ existing results are kept
def test_bad_override_and_rerun_leave_a_finished_run_byte_identical(capsys, run_copy):
    out_dir = run_copy.parent
    before = tree_digest(out_dir)
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "pruning.targt=0.5", "--out-dir", str(out_dir)])
    assert_user_error(code, out, err, "did you mean pruning.target?")
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(out_dir), "--quiet"])
    assert code == 0 and json.loads(out)["steps"] == 10  # read back, not retrained
    assert tree_digest(out_dir) == before


@pytest.mark.parametrize(
    "code_, fragment",
    [(errno.ENOSPC, "no space left on the device; free disk space or choose another out_dir"),
     (errno.EROFS, "(the location is read-only or not yours); choose a writable directory"),
     (errno.EACCES, "Permission denied")],
    ids=["disk full", "read-only", "permission denied"],
)
def test_unwritable_output_keeps_existing_results(capsys, run_copy, monkeypatch, code_, fragment):
    out_dir = run_copy.parent
    before = tree_digest(out_dir)

    def fail(*args, **kwargs):
        raise OSError(code_, os.strerror(code_))

    # disk full shows at fsync (data is flushed); read-only and permission at file creation
    target = "fsync" if code_ == errno.ENOSPC else "mkstemp"
    monkeypatch.setattr(moduli.atomic.os if target == "fsync" else moduli.atomic.tempfile, target, fail)
    code, out, err = run_main(capsys, ["train", ADDING, TINY, "train.seed=3", "--out-dir", str(out_dir), "--quiet"])
    assert_user_error(code, out, err, fragment)
    assert "cannot write" in err
    after = tree_digest(out_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if k.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the monkeypatched case covers it")
def test_read_only_directory_by_chmod(capsys, tmp_path):
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o500)
    try:
        code, out, err = run_main(capsys, ["train", ADDING, TINY, "--out-dir", str(out_dir), "--quiet"])
    finally:
        out_dir.chmod(0o700)
    assert_user_error(code, out, err, "choose a writable directory")


# ------------------------------------------------------------------------------ datasets
def _language(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "tiny-wikitext", data)
    return data


def _train_language(capsys, tmp_path, data):
    return run_main(capsys, ["train", LANGUAGE, TINY, f"language.data_dir={data}", "train.steps_per_epoch=2",
                             "train.epochs=1", "--out-dir", str(tmp_path / "o"), "--quiet"])


def test_missing_dataset_names_the_file_and_the_fixes(capsys, tmp_path):
    """Checked before the run directory exists; the fixes are the CLI keys, not Python calls."""
    code, out, err = _train_language(capsys, tmp_path, tmp_path / "nodata")
    assert_user_error(code, out, err, f"no {tmp_path / 'nodata' / 'train.txt'} or wiki.train.tokens")
    assert "set language.download=true" in err and "language.offline_splits=true" in err
    assert "download=True" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda b: b"", "is empty (no tokens)"),
        (lambda b: "naïve café ".encode() * 50 + "é".encode()[:1], "is not valid UTF-8 text"),  # cut mid-character
        (lambda b: b[:100] + b"\x00" * 64 + b[100:], "contains NUL bytes"),
    ],
    ids=["empty", "truncated", "corrupt"],
)
def test_damaged_dataset_file(capsys, tmp_path, damage, fragment):
    data = _language(tmp_path)
    (data / "valid.txt").write_bytes(damage((data / "valid.txt").read_bytes()))
    code, out, err = _train_language(capsys, tmp_path, data)
    assert_user_error(code, out, err, fragment)
    assert str(data / "valid.txt") in err


# ------------------------------------------------------------------------------ models, regulariser
def test_nan_embedding_points_are_refused():
    points = get_manifold("torus").random(4)
    points[1, 0] = float("nan")
    with pytest.raises(ValueError, match="contain NaN or infinite values; every coordinate must be finite"):
        ModuliRegularizer(get_manifold("torus"), 4, get_inhibitor("dog"), points=points)


def test_regulariser_size_must_match_the_hidden_size():
    reg = ModuliRegularizer(get_manifold("torus"), 8, get_inhibitor("dog"))
    with pytest.raises(ValueError, match=r"built for 8 neurons and needs an \(8, 8\) weight matrix, got \(16, 16\)"):
        reg(torch.zeros(16, 16))
    factory = lambda layer, n: ModuliRegularizer(get_manifold("torus"), 8, get_inhibitor("dog"))  # noqa: E731
    with pytest.raises(ValueError, match="built for 8 neurons but the layer has 16; build it with num_neurons=16"):
        ElmanStack(2, 16, 1, regularizer=factory)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_velocity_is_refused(bad):
    model = PathIntegrationRNN(num_place_cells=4, hidden_size=8)
    velocity = torch.zeros(3, 2, 2)
    velocity[1, 0, 1] = bad
    with pytest.raises(ValueError, match="velocity contains NaN or infinite values"):
        model(velocity, torch.full((2, 4), 0.25))
    assert model(torch.zeros(3, 2, 2), torch.full((2, 4), 0.25)).shape == (3, 2, 4)


# ------------------------------------------------------------------------------ divergence
def test_diverging_train_exits_1_with_one_line_and_marks_the_run_failed(capsys, tmp_path):
    code, out, err = run_main(capsys, ["train", ADDING, TINY, *DIVERGING, "--out-dir", str(tmp_path), "--quiet"])
    assert_user_error(code, out, err, "at step ", status=1)
    assert "optim.lr = 1e+30) is probably too high" in err
    (run,) = tmp_path.glob("adding-*")
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "DivergenceError" in status["error"]
    assert not (run / "summary.json").exists()
    with pytest.raises(DivergenceError):  # --debug shows the traceback
        main(["train", ADDING, TINY, *DIVERGING, "--out-dir", str(tmp_path), "--quiet", "--debug"])


def test_diverging_subprocess_exit_status_1(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "moduli.cli", "train", ADDING, TINY, *DIVERGING, "--out-dir",
                           str(tmp_path), "--quiet"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: the loss became") and proc.stderr.count("\n") == 1


def test_weights_turning_nan_at_the_end_of_an_epoch_are_never_checkpointed(tmp_path, monkeypatch):
    """A step with a finite loss can still leave NaN weights; they must not overwrite the last
    good checkpoint (here: NaN written into W_hh by the last step of epoch 1)."""
    original = Trainer.train_step

    def poisoning_step(self):
        result = original(self)
        if self.step == 10:
            with torch.no_grad():
                self.model.rnn.weight_hh_l0[0, 0] = float("nan")
        return result

    monkeypatch.setattr(Trainer, "train_step", poisoning_step)
    cfg = load_config([ADDING, TINY], [f"out_dir={tmp_path}", "train.epochs=3"])
    with pytest.raises(DivergenceError, match=r"the weights \(rnn.weight_hh_l0\) became NaN or infinite at step 10;"):
        run_config(cfg, quiet=True)
    run = RunDir(RunDir.path_for(cfg), cfg)
    assert run.status == "failed"
    state = run.load_checkpoint()  # would raise CheckpointError for NaN weights
    assert state["epoch"] == 0 and state["step"] == 5
    assert [r["epoch"] for r in run.read_metrics() if r["split"] == "valid"] == [0]


def test_sweep_reports_the_diverged_cell_as_failed(capsys, tmp_path):
    csv = tmp_path / "table.csv"
    code, out, err = run_main(capsys, ["sweep", ADDING, TINY, "optim.name=sgd", "pruning.method=none",
                                       "regularizer.kind=none", "--grid", "optim.lr=1e-3,1e30", "--out-dir",
                                       str(tmp_path / "o"), "--csv", str(csv), "--quiet"])
    assert code == 1 and err == ""
    table = pd.read_csv(csv)
    good, bad = table[table["optim.lr"] == 1e-3].iloc[0], table[table["optim.lr"] == 1e30].iloc[0]
    assert good["status"] == "finished" and pd.isna(good["error"]) and good["steps"] == 10
    assert bad["status"] == "failed" and bad["error"].startswith("DivergenceError: the loss became")
    assert pd.isna(bad["value"]) and pd.isna(bad["steps"])  # no number is reported for a failed cell


# ------------------------------------------------------------------------------ untrusted files
class _Payload:
    """Pickles into a call of open(marker, "w"): loading it with full pickle creates the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_code_is_refused_and_never_runs(tmp_path):
    cfg = load_config([ADDING, TINY], [f"out_dir={tmp_path}"])
    run = RunDir.create(cfg, check_hardware=False)
    marker = tmp_path / "marker"
    payload = {"format": 1, "config_hash": run.config_hash, "state": {"step": 0, "model": _Payload(marker)}}
    run.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, run.checkpoint_path)
    with pytest.raises(CheckpointError, match="is corrupt or truncated .*delete it to restart the run"):
        run.load_checkpoint()
    assert not marker.exists()
    torch.load(run.checkpoint_path, weights_only=False)  # the payload is live: full unpickling runs it
    assert marker.exists()


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:builtins.open ['{marker}', 'w']", "!!python/name:builtins.open", "!!python/object:os.stat_result {{}}"],
    ids=["apply", "name", "object"],
)
def test_yaml_python_tags_are_refused(capsys, tmp_path, tag):
    marker = tmp_path / "marker"
    bad = tmp_path / "evil.yaml"
    bad.write_text("task: adding\nout_dir: " + tag.format(marker=marker) + "\n")
    code, out, err = run_main(capsys, ["train", str(bad), TINY, "--out-dir", str(tmp_path / "o")])
    assert_user_error(code, out, err, "is malformed YAML")
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_resolvers_in_files_are_refused_and_never_called(tmp_path):
    calls = []
    register = getattr(OmegaConf, "register_resolver", None) or OmegaConf.register_new_resolver
    register("moduli_test_spy", lambda x: calls.append(x) or x, replace=True)
    for text in ("out_dir: ${oc.env:HOME}\n", "out_dir: ${moduli_test_spy:a}\n",
                 "pruning:\n  parameters: [rnn.weight_hh_l0, '${moduli_test_spy:b}']\n"):
        path = tmp_path / "r.yaml"
        path.write_text("task: adding\n" + text)
        with pytest.raises(ConfigError, match=r"calls a resolver; resolvers \(\$\{name:...\}\) are not allowed"):
            load_config([path, TINY])
    assert calls == []


def test_config_strings_are_data_not_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    odd = "$(touch marker)`touch marker`__import__('os').system('touch marker')"
    cfg = load_config([ADDING, TINY], [f"out_dir={json.dumps(str(tmp_path / odd))}"])
    run = RunDir.create(cfg, check_hardware=False)
    assert run.path.parent.name == odd and run.path.is_dir() and not marker.exists()


# ------------------------------------------------------------------------------ reproducibility
def test_same_seed_and_config_give_identical_metrics(finished, tmp_path, capsys):
    assert main(["train", ADDING, TINY, "--out-dir", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    (first,), (second,) = finished.glob("adding-*"), tmp_path.glob("adding-*")
    assert first.name == second.name  # the same config hash

    def rows(run):
        return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in RunDir.open(run).read_metrics()]

    assert len(rows(first)) == 12 and rows(first) == rows(second)
    strip = lambda s: {k: v for k, v in s.items() if k not in TIMING_FIELDS}  # noqa: E731
    assert strip(json.loads((first / "summary.json").read_text())) == strip(json.loads((second / "summary.json").read_text()))
    a, b = (torch.load(r / "checkpoints" / "last.pt", weights_only=True)["state"]["model"] for r in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_environment_records_versions_device_and_git_revision(finished):
    (run,) = finished.glob("adding-*")
    env = json.loads((run / "environment.json").read_text())
    assert {"python", "torch", "geoopt", "numpy", "omegaconf", "platform", "device", "device_name", "cuda",
            "git_revision", "command_line", "start_time"} <= env.keys()
    assert env["torch"] == torch.__version__ and env["python"] == sys.version.split()[0]
    assert env["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not inside a git checkout")
    assert env["git_revision"].removesuffix("+dirty") == head.stdout.strip()
