"""Figures: each function writes non-empty PNG and PDF files from tiny real runs; the data drawn
(weights, positions, snapshots, coefficients, persistence) matches independent computations."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from moduli.config import load_config
from moduli.errors import DependencyError
from moduli.figures import (
    coefficient_grid,
    embedding_snapshots,
    error_vs_sparsity,
    figure_1c,
    inhibitor_curves,
    inhibitor_profiles,
    load_embedding_snapshots,
    median_neuron,
    neuron_connectivity,
    persistence,
    persistence_diagram,
    planar_coordinates,
    select_snapshots,
)
from moduli.figures._domains import flat_coordinates
from moduli.figures.sparsity_curves import facet_order
from moduli.inhibitors import DoG
from moduli.manifolds import Circle, Euclidean, KleinBottle, Sphere, Torus
from moduli.run_dir import RunDir
from moduli.training import run_config

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def train_tiny(out_dir: Path, task: str, *overrides: str, files: tuple[str, ...] = ()) -> RunDir:
    paths = [ROOT / "configs" / f"{task}.yaml", ROOT / "configs" / "tiny.yaml"] + [ROOT / "configs" / f for f in files]
    cfg = load_config(paths, list(overrides) + [f"out_dir={out_dir}"])
    torch.set_num_threads(1)
    run_config(cfg, quiet=True)
    return RunDir.open(RunDir.path_for(cfg))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunDir]:
    """Tiny finished runs: torus DoG with magnitude / random pruning, learned torus (3 epochs),
    learned R^3 (1 epoch) and an unregularised run, all with 32 hidden neurons."""
    out = tmp_path_factory.mktemp("runs")
    return {
        "moduli": train_tiny(out, "navigation"),
        "random": train_tiny(out, "navigation", "pruning.method=random"),
        "learned": train_tiny(out, "adding", "train.epochs=3", "regularizer.embedding_optimizer=riemannian_adam",
                              "regularizer.embedding_lr=0.05",
                              files=("regularizer/learned_torus.yaml",)),
        "learned_r3": train_tiny(out, "adding", "train.epochs=1", files=("regularizer/learned_r3.yaml",)),
        "none": train_tiny(out, "adding", "train.epochs=1", files=("regularizer/none.yaml",)),
    }


def assert_figure_files(paths: list[Path], out_dir: Path, name: str) -> None:
    assert paths == [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    png, pdf = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000


def state_of(run: RunDir) -> dict:
    return run.load_checkpoint()["model"]


# ------------------------------------------------------------------------- error vs sparsity
def sparsity_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    records = [
        {"row": row, "method": method, "sparsity": s, "seed": seed, "value": base + 20 * s**4 + rng.normal()}
        for row, base in (("torus DoG", 10.0), ("L1", 14.0))
        for method in ("random", "magnitude")
        for s in (0.5, 0.9, 0.98)
        for seed in range(3)
    ]
    return pd.DataFrame.from_records(records)


def test_error_vs_sparsity_writes_png_and_pdf_deterministically(tmp_path):
    paths = error_vs_sparsity(sparsity_frame(), tmp_path / "a", "decoding error (cm)")
    assert_figure_files(paths, tmp_path / "a", "error_vs_sparsity")
    again = error_vs_sparsity(sparsity_frame(), tmp_path / "b", "decoding error (cm)")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]


def test_error_vs_sparsity_tolerates_a_diverged_run(tmp_path):
    frame = sparsity_frame()
    frame.loc[0, "value"] = float("nan")
    assert_figure_files(error_vs_sparsity(frame, tmp_path, "MSE", name="adding"), tmp_path, "adding")


def test_facets_put_known_methods_first():
    assert facet_order(["random", "zeta", "magnitude", "random", "alpha"]) == ["magnitude", "random", "alpha", "zeta"]


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda f: f.drop(columns="seed"), ValueError, "seed"),
        (lambda f: f.assign(sparsity=f["sparsity"] * 100), ValueError, "fractions"),
        (lambda f: f.iloc[:0], ValueError, "no rows"),
        (lambda f: f.assign(value=f["value"].astype(str)), TypeError, "numeric"),
        (lambda f: f.to_dict(), TypeError, "DataFrame"),
    ],
)
def test_error_vs_sparsity_rejects_bad_frames(tmp_path, change, error, match):
    with pytest.raises(error, match=match):
        error_vs_sparsity(change(sparsity_frame()), tmp_path, "MSE")
    assert not tmp_path.joinpath("error_vs_sparsity.png").exists()


def test_figures_reject_bad_out_dir_and_name(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        error_vs_sparsity(sparsity_frame(), file, "MSE")
    with pytest.raises(ValueError, match="file stem"):
        error_vs_sparsity(sparsity_frame(), tmp_path, "MSE", name="../up")
    with pytest.raises(ValueError, match="metric_label"):
        error_vs_sparsity(sparsity_frame(), tmp_path, "  ")


# ------------------------------------------------------------------------------- figure 1c
def test_median_neuron_against_a_counting_loop():
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(9, 9, generator=gen) * (torch.rand(9, 9, generator=gen) < 0.4)
    counts = [sum(1 for k in range(9) if weight[j, k] != 0) for j in range(9)]
    median = sorted(counts)[4]
    assert median_neuron(weight) == counts.index(median)
    with pytest.raises(ValueError, match="square"):
        median_neuron(torch.zeros(3, 4))


def test_neuron_connectivity_is_the_checkpoint_row_and_positions(runs):
    run = runs["moduli"]
    state = state_of(run)
    weight, points = state["rnn.weight_hh_l0"], state["rnn.regularizers.0.embedding"]
    conn = neuron_connectivity(run, neuron=5)
    assert conn.neuron == 5
    np.testing.assert_array_equal(conn.weights, weight[5].double().numpy())
    np.testing.assert_allclose(conn.positions, Torus(2, 10.0).project(points.double()).numpy(), atol=1e-6)
    assert conn.positions.shape == (32, 2) and conn.weights.shape == (32,)
    assert conn.sparsity == pytest.approx(float((weight == 0).double().mean()))
    assert conn.surviving == int((weight[5] != 0).sum())
    assert 0.8 < conn.sparsity < 1.0  # the tiny run pruned W_hh to about 90%
    default = neuron_connectivity(run)
    assert default.neuron == median_neuron(weight)
    with pytest.raises(ValueError, match="neuron"):
        neuron_connectivity(run, neuron=32)


def test_run_without_positions_borrows_them_or_fails_clearly(runs):
    with pytest.raises(ValueError, match="positions_run"):
        neuron_connectivity(runs["none"])
    conn = neuron_connectivity(runs["none"], neuron=0, positions_run=runs["moduli"])
    np.testing.assert_array_equal(conn.weights, state_of(runs["none"])["rnn.weight_hh_l0"][0].double().numpy())
    assert conn.positions_from == runs["moduli"].path.name


def test_figure_1c_writes_both_panels(runs, tmp_path):
    paths = figure_1c(runs["moduli"], str(runs["random"].path), tmp_path)
    assert_figure_files(paths, tmp_path, "figure_1c")


def test_figure_1c_rejects_manifolds_without_a_flat_picture(runs, tmp_path):
    with pytest.raises(ValueError, match="flat 2-D domain"):
        figure_1c(runs["learned_r3"], runs["random"], tmp_path)
    with pytest.raises(TypeError, match="RunDir"):
        figure_1c(42, runs["random"], tmp_path)


def test_flat_coordinates_of_each_supported_space():
    klein = flat_coordinates(KleinBottle(10.0), torch.tensor([[12.0, 3.0], [-1.0, 1.0]]))
    np.testing.assert_allclose(klein.xy, [[2.0, 7.0], [9.0, 9.0]], atol=1e-12)  # odd x-wrap mirrors y
    circle = flat_coordinates(Circle(), torch.tensor([[0.0, 1.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(circle.xy, [[0.0, 1.0], [-1.0, 0.0]], atol=1e-12)
    sphere = flat_coordinates(Sphere(2), torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(sphere.xy, [[1.5 * math.pi, 0.0], [0.0, 0.5 * math.pi]], atol=1e-12)
    for manifold, points in ((Euclidean(3), torch.zeros(2, 3)), (Torus(6), torch.zeros(2, 6))):
        with pytest.raises(ValueError, match="torus, a Klein bottle"):
            flat_coordinates(manifold, points)


# ------------------------------------------------------------------------------ inhibitors
def test_inhibitor_profiles_write_both_figures(tmp_path):
    paths = inhibitor_profiles(tmp_path, max_distance=5.0)
    assert_figure_files(paths[:2], tmp_path, "inhibitor_profiles")
    assert_figure_files(paths[2:], tmp_path, "inhibitor_domains")
    with pytest.raises(ValueError, match="max_distance"):
        inhibitor_profiles(tmp_path, max_distance=-1.0)


def test_inhibitor_curves_cover_the_registry_and_the_dog_minimum():
    d, curves = inhibitor_curves(7.0, samples=2001)
    assert set(curves) == {"dog", "diffusion", "ripple", "gaussian", "identity", "constant"}
    np.testing.assert_allclose(curves["identity"], d)
    dog = curves["dog"]
    assert abs(d[dog.argmin()] - DoG().peak_distance) < 7.0 / 2000 and dog.min() < 1e-3


@pytest.mark.parametrize("manifold", [Torus(2, 10.0), KleinBottle(10.0)])
def test_coefficient_grid_against_the_nearest_image_brute_force(manifold):
    centre = (1.2, 2.7)
    values, axis = coefficient_grid(manifold, centre, resolution=12)
    p, flips = 10.0, isinstance(manifold, KleinBottle)
    for i in range(0, 12, 5):
        for k in range(12):
            x, y = axis[k], axis[i]
            # images of the centre: (cx + a p, (+-1)^a cy + b p), mirrored in y for odd a on the Klein bottle
            best = min(
                math.hypot(x - (centre[0] + a * p), y - ((-1) ** a * centre[1] if flips else centre[1]) - b * p)
                for a in range(-2, 3)
                for b in range(-2, 3)
            )
            expected = float(DoG()(torch.tensor([best], dtype=torch.float64))[0])
            assert values[i, k] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_klein_domain_shows_the_mirrored_image():
    torus, axis = coefficient_grid(Torus(2, 10.0), (1.0, 2.6), resolution=20)
    klein, _ = coefficient_grid(KleinBottle(10.0), (1.0, 2.6), resolution=20)
    # at the right edge the torus image sits at y = 2.6, the Klein bottle's at y = 10 - 2.6
    assert axis[torus[:, -1].argmin()] == pytest.approx(2.75) and axis[klein[:, -1].argmin()] == pytest.approx(7.25)
    assert torus[:, 0].argmin() == klein[:, 0].argmin()  # near the centre the two agree


# ------------------------------------------------------------------------------ embeddings
def test_snapshots_are_read_for_every_epoch(runs):
    snapshots = load_embedding_snapshots(runs["learned"])
    assert [epoch for epoch, _ in snapshots] == [0, 1, 2]
    final = state_of(runs["learned"])["rnn.regularizers.0.embedding"].double()
    torch.testing.assert_close(snapshots[-1][1], final)
    assert not torch.equal(snapshots[0][1], snapshots[-1][1])  # the positions were learned


def test_embedding_snapshots_write_files(runs, tmp_path):
    assert_figure_files(embedding_snapshots(runs["learned"], tmp_path, max_panels=2), tmp_path, "embedding_snapshots")
    assert_figure_files(embedding_snapshots(runs["learned_r3"], tmp_path, name="r3"), tmp_path, "r3")


def test_embedding_snapshots_need_a_learned_embedding(runs, tmp_path):
    with pytest.raises(ValueError, match="no learned embedding"):
        embedding_snapshots(runs["moduli"], tmp_path)
    with pytest.raises(ValueError, match="layer"):
        load_embedding_snapshots(runs["learned"], layer=1)


def test_select_snapshots_spreads_panels_and_keeps_the_ends():
    assert select_snapshots(3, 6) == [0, 1, 2]
    assert select_snapshots(11, 3) == [0, 5, 10]
    assert select_snapshots(100, 6) == [0, 20, 40, 59, 79, 99]
    assert select_snapshots(5, 1) == [4]


def test_pca_of_planar_points_keeps_their_distances():
    gen = torch.Generator().manual_seed(3)
    plane = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0][:, :2]
    snapshots = [torch.randn(20, 2, generator=gen, dtype=torch.float64) @ plane.T + 4.0 for _ in range(2)]
    coords, text = planar_coordinates(Euclidean(3), snapshots)
    assert "PCA" in text and "100%" in text
    for xy, points in zip(coords, snapshots):
        np.testing.assert_allclose(torch.cdist(torch.from_numpy(xy), torch.from_numpy(xy)).numpy(),
                                   torch.cdist(points, points).numpy(), atol=1e-9)


# ----------------------------------------------------------------------------- persistence
def test_circle_has_one_h1_bar_at_the_known_scales():
    pytest.importorskip("ripser")
    n, radius = 40, 5.0
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    points = torch.stack((torch.cos(angle), torch.sin(angle)), dim=1)
    h0, h1 = persistence(points, Circle(radius))
    step = 2 * math.pi * radius / n
    assert len(h0) == n and np.isinf(h0[:, 1]).sum() == 1
    np.testing.assert_allclose(h0[np.isfinite(h0[:, 1]), 1], step, rtol=1e-6)
    # Rips complexes of n evenly spaced circle points are circles while the scale is < n/3 steps
    assert h1.shape == (1, 2)
    np.testing.assert_allclose(h1[0], [step, math.ceil(n / 3) * step], rtol=1e-6)


def test_noisy_ring_in_the_plane_has_exactly_one_long_h1_bar(tmp_path):
    pytest.importorskip("ripser")
    gen = torch.Generator().manual_seed(0)
    angle = torch.rand(40, generator=gen, dtype=torch.float64) * 2 * math.pi
    ring = 3.0 * torch.stack((torch.cos(angle), torch.sin(angle)), dim=1) + 0.05 * torch.randn(40, 2, generator=gen, dtype=torch.float64)
    _, h1 = persistence(ring.numpy())
    lifetimes = np.sort(h1[:, 1] - h1[:, 0])[::-1]
    assert lifetimes[0] > 2.0 and (len(lifetimes) == 1 or lifetimes[1] < 0.5)
    assert_figure_files(persistence_diagram(ring, tmp_path), tmp_path, "persistence")


def test_persistence_diagram_of_a_run_and_its_errors(runs, tmp_path):
    pytest.importorskip("ripser")
    assert_figure_files(persistence_diagram(runs["learned"], tmp_path, name="learned"), tmp_path, "learned")
    with pytest.raises(ValueError, match="leave it None"):
        persistence_diagram(runs["learned"], tmp_path, manifold="torus")
    with pytest.raises(ValueError, match="no neuron positions"):
        persistence_diagram(runs["none"], tmp_path)
    with pytest.raises(ValueError, match="unit vectors"):
        persistence(torch.ones(5, 2), Circle())
    with pytest.raises(ValueError, match="maxdim"):
        persistence(torch.zeros(5, 2), maxdim=4)


def test_missing_ripser_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ripser", None)  # makes "import ripser" fail
    with pytest.raises(DependencyError, match=r'pip install "moduli\[tda\]"'):
        persistence(torch.zeros(5, 2))
