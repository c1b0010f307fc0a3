"""Every tutorial page runs as written: its ```python blocks execute in order, and what the page
says the code shows (a falling loss, equal outputs, local connectivity, ...) holds."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"

_spec = importlib.util.spec_from_file_location("tutorial_code", ROOT / "docs" / "tools" / "tutorial_code.py")
tutorial_code = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tutorial_code)

pytestmark = pytest.mark.usefixtures("one_thread")


def run(page: str, cwd: Path, capsys) -> tuple[dict, str]:
    namespace = tutorial_code.run_page(TUTORIALS / page, cwd)
    return namespace, capsys.readouterr().out


def test_code_blocks_are_found_in_order(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = a + 1\n```\n")
    assert tutorial_code.code_blocks(page) == ["a = 1\n", "b = a + 1\n"]
    assert tutorial_code.run_page(page, tmp_path)["b"] == 2
    page.write_text("```python\na = 1\n")
    with pytest.raises(ValueError, match="not closed"):
        tutorial_code.code_blocks(page)


def test_every_tutorial_has_code():
    pages = sorted(p.name for p in TUTORIALS.glob("*.md"))
    assert pages == ["modula-core.md", "pruning.md", "regularizer.md", "reproduce.md"]
    assert all(len(tutorial_code.code_blocks(TUTORIALS / p)) >= 4 for p in pages)


def test_regularizer_tutorial(tmp_path, capsys):
    ns, out = run("regularizer.md", tmp_path, capsys)
    assert "gradient = strength * f(d) * sign(w) / N^2: True" in out
    losses, baseline = ns["losses"], ns["BASELINE_MSE"]
    assert sum(losses[-20:]) / 20 < 0.5 * baseline < sum(losses[:20]) / 20  # it learns the task
    reg, rnn, plain = ns["reg"], ns["rnn"], ns["plain"]
    assert reg(rnn.weight_hh_l0) < 0.5 * reg(plain.weight_hh_l0)
    assert ns["local_ratio"](rnn.weight_hh_l0) > 1.3  # close neurons strongly connected
    assert 0.8 < ns["local_ratio"](plain.weight_hh_l0) < 1.25  # positions mean nothing without the penalty
    assert set(ns["torus_reg"]) == {"dog", "diffusion", "ripple", "gaussian", "identity", "constant"}
    torus = ns["Torus"]()
    assert torus.pairwise_distance(ns["end"]).mean() < torus.pairwise_distance(ns["start"]).mean()
    picture = tmp_path / "learned_positions.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert "(img/learned_positions.png)" in (TUTORIALS / "regularizer.md").read_text()
    assert (TUTORIALS / "img" / "learned_positions.png").is_file()  # the committed copy the page shows
    norms = ns["norms"]
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert ns["same_values"] is True
    assert "L1: every coefficient is [1.0]" in out
    assert ns["outputs"].shape == (10, 4, 64)


def test_modula_core_tutorial(tmp_path, capsys):
    ns, out = run("modula-core.md", tmp_path, capsys)
    mlp = ns["mlp"]
    normalised = float(re.search(r"after normalize\(\.\.\., 0\.5\): ([0-9.]+)", out).group(1))
    assert math.isclose(normalised, 0.5, rel_tol=0.01)
    dual = ns["dual_values"]
    assert float(dual.max() / dual.min()) < 1.01  # orthogonalised: equal singular values
    assert math.isclose(mlp.norm(ns["dual"]), 1.0, rel_tol=0.01)
    assert ns["losses"][-1] < 0.6 * ns["losses"][0]
    assert "equals torch.nn.RNN: True" in out
    rnn = ns["rnn"]
    assert rnn.gain() == 20 and rnn.part_targets(1.0) == [1 / 40, 1 / 40]
    for norm, target in zip(rnn.part_norms(ns["rnn_update"]), rnn.part_targets(1.0)):
        assert math.isclose(norm, target, rel_tol=0.01)
    changes = ns["changes"]
    assert changes[1024][0] > 2 * changes[64][0]  # plain Adam: the output moves more at width
    modular = [m for _, m in changes.values()]
    assert max(modular) < 1.2 * min(modular)  # modular Adam: the same at every width


def test_pruning_tutorial(tmp_path, capsys):
    ns, out = run("pruning.md", tmp_path, capsys)
    report = ns["sparsity_report"](ns["weights"], ns["global_masks"])
    assert math.isclose(report.sparsity, 0.9, abs_tol=1e-3)
    assert report["rnn.weight_hh_l0"].sparsity > 0.9 > report["rnn.weight_ih_l0"].sparsity
    assert ns["same_counts"] is True
    assert len(ns["kept_per_neuron"].unique()) == 1
    distances, geometric, random_masks = ns["distances"], ns["geometric"], ns["random_masks"]
    assert distances[geometric["rnn.weight_hh_l0"]].mean() < distances[random_masks["rnn.weight_hh_l0"]].mean()
    assert out.count("pruned weights still exactly zero: True") == 2
    assert ns["results"]["magnitude"] < 0.5 * ns["results"]["random"]
    assert re.search(r"after the ramp: 0\.9\d\d", out)
    assert "masks read back: True" in out
    assert torch.allclose(ns["dense_states"], ns["sparse_states"], atol=1e-5)
    assert ns["sparse"].formats()["w_hh_l0"] == "csr"


def test_reproduce_tutorial(capsys):
    before = sorted(p.name for p in ROOT.iterdir())
    ns, out = run("reproduce.md", ROOT, capsys)  # reads the committed results from the root
    assert sorted(p.name for p in ROOT.iterdir()) == before  # and writes nothing there
    plan = ns["plan"]
    assert plan.cells and 0 <= plan.to_train <= len(plan.cells) and plan.runs is None
    stored = ns["stored"]
    assert math.isclose(ns["mean"], stored["mean"], rel_tol=1e-8)
    assert math.isclose(ns["std"], stored["std"], rel_tol=1e-8)
    assert math.isclose(ns["p_noreg"], stored["p_vs_noreg"], rel_tol=1e-6)
    assert math.isclose(ns["p_random"], stored["p_vs_random"], rel_tol=1e-6)
    assert ns["marks"] == "†"
    table_md = (ROOT / "experiments" / "results" / "navigation" / "cpu-dog" / "table.md").read_text()
    assert "| controls | Torus DoG | 70.8 (3.6)\\* | 84.2 (0.5)† |" in table_md  # the cell the page reads
