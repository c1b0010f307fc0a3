"""Tests of the task data: trajectories, place cells, adding problem, WikiText-2."""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import urllib.request
import zipfile
from pathlib import Path

import pytest
import torch

from moduli.tasks import (
    BASELINE_MSE,
    AddingProblem,
    DataError,
    PlaceCells,
    TrajectoryGenerator,
    adding_loss,
    Corpus,
    batchify,
    cap_vocabulary,
    decoding_error_cm,
    download_wikitext2,
    get_batch,
    load_offline_splits,
    load_wikitext2,
    navigation_loss,
    next_token_accuracy,
    perplexity,
    unigram_perplexity,
    unk_rate,
    wall_avoidance,
)
from moduli.tasks.wikitext_download import ARCHIVE_NAME

TINY = Path(__file__).resolve().parents[2] / "data" / "tiny-wikitext"
SPLITS = ("train", "valid", "test")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- trajectories


def test_positions_stay_in_box() -> None:
    g = TrajectoryGenerator()
    for seed in range(3):
        traj = g.sample(500, gen(seed))
        assert traj.position.shape == (50, 500, 2) and traj.velocity.shape == (50, 500, 2)
        assert traj.start.shape == (500, 2) and traj.heading.shape == (50, 500)
        assert traj.start.abs().max() <= 1.1
        assert traj.position.abs().max() <= 1.1 + 1e-6


def test_sorscher_rule_alone_overshoots_walls() -> None:
    # The reason for hard_walls: without it, agents just outside the border region step past the wall.
    traj = TrajectoryGenerator(hard_walls=False).sample(2000, gen(0))
    assert traj.position.abs().max() > 1.1 + 1e-3


@pytest.mark.parametrize("hard_walls", [True, False])
def test_velocity_integrates_to_position(hard_walls: bool) -> None:
    traj = TrajectoryGenerator(hard_walls=hard_walls).sample(300, gen(1))
    integrated = traj.start + traj.velocity.cumsum(dim=0)
    torch.testing.assert_close(integrated, traj.position, atol=1e-5, rtol=0)
    # The velocity is a step along the heading: [v cos(hd), v sin(hd)] with v >= 0.
    step = traj.velocity.norm(dim=-1)
    direction = torch.stack([traj.heading.cos(), traj.heading.sin()], dim=-1)
    torch.testing.assert_close(traj.velocity, step[..., None] * direction, atol=1e-5, rtol=0)


def test_speed_and_turn_statistics_far_from_walls() -> None:
    g = TrajectoryGenerator(box_size=1000.0)  # walls never reached: pure Rayleigh speed, Gaussian turns
    traj = g.sample(2000, gen(2))
    speed = traj.velocity.norm(dim=-1) / g.dt
    b = 0.13 * 2 * math.pi
    assert abs(speed.mean().item() / (b * math.sqrt(math.pi / 2)) - 1) < 0.02
    assert abs((speed**2).mean().item() / (2 * b**2) - 1) < 0.03  # Rayleigh second moment
    turns = torch.remainder(traj.heading.diff(dim=0) + math.pi, 2 * math.pi) - math.pi
    assert abs(turns.std().item() / (11.52 * g.dt) - 1) < 0.03


def test_seeding_is_reproducible() -> None:
    g = TrajectoryGenerator(seq_len=20)
    a, b, c = g.sample(64, gen(7)), g.sample(64, gen(7)), g.sample(64, gen(8))
    assert torch.equal(a.position, b.position) and torch.equal(a.velocity, b.velocity)
    assert not torch.equal(a.position, c.position)


def test_wall_avoidance_known_cases() -> None:
    pos = torch.tensor([[1.09, 0.0], [1.09, 0.0], [1.09, 0.0], [0.0, 0.0], [0.0, 1.09], [-1.09, 0.0], [1.05, 0.0]])
    hd = torch.tensor([0.3, -0.3, math.pi, 0.3, math.pi / 2 + 0.2, math.pi - 0.1, 0.0])
    near, turn = wall_avoidance(pos, hd, box_size=2.2, border_region=0.03)
    assert near.tolist() == [True, True, False, False, True, True, False]
    expected = [math.pi / 2 - 0.3, -(math.pi / 2 - 0.3), 0.0, 0.0, math.pi / 2 - 0.2, -(math.pi / 2 - 0.1), 0.0]
    torch.testing.assert_close(turn, torch.tensor(expected), atol=1e-6, rtol=0)


def test_wall_slowdown_applies_exactly_near_walls() -> None:
    # A border region covering the box makes every agent facing its nearest wall "near" at step 0.
    kw = dict(seq_len=1, border_region=5.0, hard_walls=False)
    slow = TrajectoryGenerator(wall_slowdown=0.25, **kw).sample(400, gen(3))
    free = TrajectoryGenerator(wall_slowdown=1.0, **kw).sample(400, gen(3))
    near, _ = wall_avoidance(slow.start, slow.heading[0], 2.2, 5.0)
    ratio = slow.velocity[0].norm(dim=-1) / free.velocity[0].norm(dim=-1)
    expected = torch.where(near, torch.tensor(0.25), torch.tensor(1.0))
    assert 50 < int(near.sum()) < 350
    torch.testing.assert_close(ratio, expected, atol=1e-5, rtol=0)


def test_trajectory_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TrajectoryGenerator().sample(0)
    with pytest.raises(ValueError, match="wall_slowdown"):
        TrajectoryGenerator(wall_slowdown=2.0)
    with pytest.raises(TypeError, match="seq_len"):
        TrajectoryGenerator(seq_len=2.5)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_trajectories_on_cuda() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    traj = TrajectoryGenerator().sample(256, g)
    assert traj.position.device.type == "cuda" and traj.velocity.device.type == "cuda"
    assert traj.position.abs().max() <= 1.1 + 1e-6
    torch.testing.assert_close(traj.start + traj.velocity.cumsum(0), traj.position, atol=1e-5, rtol=0)
    again = TrajectoryGenerator().sample(256, torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(traj.position, again.position)
    cells = PlaceCells(num_cells=64)
    act = cells.activation(traj.position)
    assert act.device.type == "cuda"
    assert decoding_error_cm(act.log(), traj.position, cells) < 100


# --------------------------------------------------------------------------- place cells


def test_place_cell_activation_matches_brute_force() -> None:
    cells = PlaceCells(num_cells=16, sigma=0.12, surround_scale=2.0, seed=4)
    pos = torch.tensor([[0.1, -0.3], [1.0, 1.0], [-0.5, 0.2]], dtype=torch.float64)
    act = cells.activation(pos)
    for p in range(pos.shape[0]):
        d2 = [float(((pos[p] - cells.centres[i].double()) ** 2).sum()) for i in range(16)]
        narrow = [math.exp(-d / (2 * 0.12**2)) for d in d2]
        wide = [math.exp(-d / (2 * 2.0 * 0.12**2)) for d in d2]
        dog = [n / sum(narrow) - w / sum(wide) for n, w in zip(narrow, wide)]
        shifted = [x - min(dog) for x in dog]
        expected = torch.tensor([x / sum(shifted) for x in shifted], dtype=torch.float64)
        torch.testing.assert_close(act[p], expected, atol=1e-12, rtol=0)


def test_gaussian_place_cells_match_brute_force_softmax() -> None:
    cells = PlaceCells(num_cells=16, sigma=0.12, seed=4, tuning="gaussian")
    pos = torch.tensor([[0.1, -0.3], [1.0, 1.0], [-0.5, 0.2]], dtype=torch.float64)
    act = cells.activation(pos)
    for p in range(pos.shape[0]):
        d2 = [float(((pos[p] - cells.centres[i].double()) ** 2).sum()) for i in range(16)]
        narrow = [math.exp(-d / (2 * 0.12**2)) for d in d2]
        expected = torch.tensor([n / sum(narrow) for n in narrow], dtype=torch.float64)
        torch.testing.assert_close(act[p], expected, atol=1e-12, rtol=0)


def test_gaussian_targets_are_peaked_and_dog_targets_nearly_uniform() -> None:
    # The paper's population (512 cells, sigma 0.12 m, 2.2 m box): the DoG shift-and-renormalise
    # target is within about 0.1 nat of uniform, the Gaussian one about 3 nats below it.
    pos = TrajectoryGenerator(seq_len=20).sample(100, gen(0)).position
    uniform = math.log(512)
    entropy = {t: float(torch.special.entr(PlaceCells(tuning=t).activation(pos)).sum(-1).mean()) for t in ("dog", "gaussian")}
    assert 0.05 < uniform - entropy["dog"] < 0.12
    assert uniform - entropy["gaussian"] > 2.5
    # peaked: the three most active Gaussian cells carry about 0.29 of the mass, the DoG ones 0.04
    top3 = {t: float(PlaceCells(tuning=t).activation(pos).topk(3, -1).values.sum(-1).mean()) for t in ("dog", "gaussian")}
    assert top3["gaussian"] > 0.2 > 0.05 > top3["dog"]


def test_with_tuning_keeps_the_centres_and_leaves_the_original_alone() -> None:
    dog = PlaceCells(num_cells=32, seed=3)
    gaussian = dog.with_tuning("gaussian")
    assert (dog.tuning, gaussian.tuning) == ("dog", "gaussian")
    assert torch.equal(gaussian.centres, dog.centres) and gaussian.sigma == dog.sigma
    pos = torch.tensor([[0.2, 0.1]])
    torch.testing.assert_close(gaussian.activation(pos), PlaceCells(num_cells=32, seed=3, tuning="gaussian").activation(pos))
    assert not torch.allclose(gaussian.activation(pos), dog.activation(pos))
    with pytest.raises(ValueError, match="tuning must be one of dog, gaussian"):
        PlaceCells(tuning="mexican_hat")
    with pytest.raises(ValueError, match="tuning must be one of"):
        dog.with_tuning("flat")


def test_place_cell_tunings_match_the_config_choices() -> None:
    from moduli.config import PLACE_CELL_TUNINGS
    from moduli.tasks.place_cells import TUNINGS

    assert PLACE_CELL_TUNINGS == TUNINGS


def test_place_cells_distribution_and_centres() -> None:
    cells = PlaceCells()
    assert cells.centres.shape == (512, 2) and cells.centres.abs().max() <= 1.1
    assert torch.equal(cells.centres, PlaceCells().centres)
    assert not torch.equal(cells.centres, PlaceCells(seed=1).centres)
    act = cells.activation(TrajectoryGenerator(seq_len=5).sample(8, gen(0)).position)
    assert act.shape == (5, 8, 512) and act.min() >= 0
    torch.testing.assert_close(act.sum(-1), torch.ones(5, 8))


def test_decode_and_decoding_error_known_values() -> None:
    cells = PlaceCells(num_cells=32, seed=5)
    logits = torch.zeros(2, 32)
    logits[0, [3, 9, 17]] = torch.tensor([5.0, 4.0, 3.0])
    logits[1, [0, 1, 2]] = 1.0
    decoded = cells.decode(logits, k=3)
    torch.testing.assert_close(decoded[0], cells.centres[[3, 9, 17]].mean(0))
    torch.testing.assert_close(decoded[1], cells.centres[[0, 1, 2]].mean(0))
    position = decoded + torch.tensor([[0.03, 0.04], [0.0, -0.12]])
    assert decoding_error_cm(logits, position, cells) == pytest.approx((5.0 + 12.0) / 2, abs=1e-4)
    # Decoding the true activation lands near the true position (cells about 10 cm apart).
    pos = TrajectoryGenerator(seq_len=10).sample(50, gen(1)).position
    big = PlaceCells()
    assert decoding_error_cm(big.activation(pos).log(), pos, big) < 10.0


def test_navigation_loss_is_cross_entropy() -> None:
    torch.manual_seed(0)
    target = torch.softmax(torch.randn(3, 4, 6), -1)
    logits = torch.randn(3, 4, 6)
    expected = sum(
        -sum(float(target[t, b, i]) * math.log(float(torch.softmax(logits[t, b], -1)[i])) for i in range(6))
        for t in range(3)
        for b in range(4)
    ) / 12
    assert navigation_loss(logits, target).item() == pytest.approx(expected, rel=1e-5)
    entropy = navigation_loss(target.log(), target).item()
    assert entropy < navigation_loss(logits, target).item()
    with pytest.raises(ValueError, match="same shape"):
        navigation_loss(logits, target[:, :, :5])


# --------------------------------------------------------------------------- adding problem


def test_adding_markers_and_target() -> None:
    inputs, target = AddingProblem(seq_len=50).sample(500, gen(0))
    assert inputs.shape == (50, 500, 2) and target.shape == (500, 1)
    values, markers = inputs[..., 0], inputs[..., 1]
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(markers.sum(0), torch.full((500,), 2.0))  # exactly two, hence distinct
    assert values.min() >= 0 and values.max() < 1
    for b in range(500):
        marked = [t for t in range(50) if markers[t, b] == 1.0]
        assert len(marked) == 2 and marked[0] != marked[1]
        assert target[b, 0].item() == pytest.approx(values[marked[0], b].item() + values[marked[1], b].item())


def test_adding_marker_positions_cover_the_sequence() -> None:
    inputs, _ = AddingProblem(seq_len=10).sample(20000, gen(1))
    counts = inputs[..., 1].sum(1)  # expected 2 * 20000 / 10 = 4000 per position
    assert ((counts - 4000).abs() < 250).all()


def test_adding_baseline_mse() -> None:
    problem, total, n = AddingProblem(), 0.0, 0
    g = gen(2)
    for _ in range(10):
        _, target = problem.sample(10000, g)
        total += adding_loss(torch.ones_like(target), target).item() * target.shape[0]
        n += target.shape[0]
    assert abs(total / n / BASELINE_MSE - 1) < 0.01
    assert BASELINE_MSE == pytest.approx(1 / 6)


def test_adding_reproducible_and_loss_checks() -> None:
    a, b = AddingProblem(20).sample(16, gen(3)), AddingProblem(20).sample(16, gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    pred, tgt = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]])
    assert adding_loss(pred, tgt).item() == pytest.approx((1 + 4) / 2)
    with pytest.raises(ValueError, match="same shape"):
        adding_loss(pred, tgt.view(-1))
    with pytest.raises(ValueError, match="seq_len"):
        AddingProblem(seq_len=1)


# --------------------------------------------------------------------------- WikiText-2


def direct_tokens(path: Path) -> list[str]:
    tokens: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            tokens += line.split() + ["<eos>"]
    return tokens


def test_tiny_corpus_token_counts_and_ids() -> None:
    corpus = load_wikitext2(TINY)
    all_tokens: set[str] = set()
    for split in SPLITS:
        path = TINY / f"{split}.txt"
        tokens = direct_tokens(path)
        all_tokens |= set(tokens)
        ids = corpus[split]
        assert ids.dtype == torch.long and ids.numel() == len(tokens)
        assert [corpus.dictionary.idx2word[i] for i in ids.tolist()] == tokens
        n_lines = path.read_bytes().count(b"\n")
        assert (ids == corpus.dictionary.word2idx["<eos>"]).sum().item() == n_lines
    assert len(corpus.dictionary) == len(all_tokens)
    assert TINY.joinpath("train.txt").stat().st_size + TINY.joinpath("valid.txt").stat().st_size < 100_000


def test_batchify_and_get_batch() -> None:
    data = torch.arange(103)
    source = batchify(data, 4)
    assert source.shape == (25, 4)
    for b in range(4):
        assert torch.equal(source[:, b], data[b * 25 : (b + 1) * 25])
    x, y = get_batch(source, 0, 7)
    assert x.shape == y.shape == (7, 4)
    assert torch.equal(y[:-1], x[1:]) and torch.equal(y, source[1:8])
    x, y = get_batch(source, 20, 7)  # last window is shorter: rows 20..23 -> targets 21..24
    assert x.shape == (4, 4) and torch.equal(y, source[21:25])
    with pytest.raises(ValueError, match="i must be"):
        get_batch(source, 24, 7)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(data, 0)


def test_missing_file_error_names_it(tmp_path: Path) -> None:
    for split in ("valid", "test"):
        shutil.copy(TINY / f"{split}.txt", tmp_path / f"{split}.txt")
    with pytest.raises(DataError) as info:
        load_wikitext2(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "train.txt") in message and "download=True" in message
    assert "valid" not in message.split("Fix:")[0]
    corpus = load_wikitext2(tmp_path, splits=("valid", "test"))
    assert set(corpus.splits) == {"valid", "test"}


def test_both_naming_conventions_load(tmp_path: Path) -> None:
    reference = load_wikitext2(TINY)
    official = tmp_path / "official"
    official.mkdir()
    extracted = tmp_path / "extracted" / "wikitext-2"
    extracted.mkdir(parents=True)
    for split in SPLITS:
        shutil.copy(TINY / f"{split}.txt", official / f"wiki.{split}.tokens")
        shutil.copy(TINY / f"{split}.txt", extracted / f"wiki.{split}.tokens")
    for root in (official, extracted.parent):
        corpus = load_wikitext2(root)
        assert corpus.dictionary.idx2word == reference.dictionary.idx2word
        for split in SPLITS:
            assert torch.equal(corpus[split], reference[split])


@pytest.mark.parametrize(
    "content, phrase",
    [(b"", "empty"), (b" \n \n", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "NUL"), (b"caf\xc3", "UTF-8")],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, phrase: str) -> None:
    for split in SPLITS:
        shutil.copy(TINY / f"{split}.txt", tmp_path / f"{split}.txt")
    (tmp_path / "valid.txt").write_bytes(content)
    with pytest.raises(DataError, match=phrase) as info:
        load_wikitext2(tmp_path)
    assert str(tmp_path / "valid.txt") in str(info.value)


def test_offline_splits_roles(tmp_path: Path) -> None:
    corpus, roles = load_offline_splits(TINY, train_from="train", test_from="test", valid_fraction=0.25)
    n_lines = TINY.joinpath("train.txt").read_bytes().count(b"\n")
    cut = int(n_lines * 0.75)
    n_test = TINY.joinpath("test.txt").read_bytes().count(b"\n")
    assert roles == (
        f"trained on train.txt lines [0, {cut}), validated on train.txt lines [{cut}, {n_lines}), "
        f"tested on test.txt (all {n_test} lines)"
    )
    words = corpus.dictionary.idx2word
    assert [words[i] for i in torch.cat([corpus.train, corpus.valid]).tolist()] == direct_tokens(TINY / "train.txt")
    assert [words[i] for i in corpus.test.tolist()] == direct_tokens(TINY / "test.txt")
    assert (corpus.train == corpus.dictionary.word2idx["<eos>"]).sum().item() == cut
    with pytest.raises(ValueError, match="must differ"):
        load_offline_splits(TINY, train_from="test", test_from="test")
    with pytest.raises(DataError, match="train.txt"):
        load_offline_splits(tmp_path, train_from="train")


def test_cap_vocabulary_keeps_most_frequent_training_words() -> None:
    corpus = Corpus.from_lines(
        {"train": ["b a b c", "a b <unk> d"], "test": ["a e b", "c d"]},
    )
    capped = cap_vocabulary(corpus, 4)
    # train counts: b 3, a 2, <eos> 2, c 1, <unk> 1, d 1 -> keep <eos>, <unk>, b, a (c, d tie-broken away)
    assert capped.dictionary.idx2word == ["<eos>", "<unk>", "b", "a"]
    words = capped.dictionary.idx2word
    assert [words[i] for i in capped.train.tolist()] == "b a b <unk> <eos> a b <unk> <unk> <eos>".split()
    assert [words[i] for i in capped.test.tolist()] == "a <unk> b <eos> <unk> <unk> <eos>".split()
    assert unk_rate(capped.test, capped.dictionary) == pytest.approx(3 / 7)
    assert len(corpus.dictionary) == 7 and corpus.test.numel() == 7  # the original is untouched
    # Ties break by first appearance: c (first seen before d) is kept at size 5.
    assert cap_vocabulary(corpus, 5).dictionary.idx2word[-1] == "c"
    # A cap above the vocabulary keeps every training word; words only in test become <unk>.
    full = cap_vocabulary(corpus, 100)
    assert set(full.dictionary.idx2word) == {"<eos>", "<unk>", "a", "b", "c", "d"}
    assert unk_rate(full.test, full.dictionary) == pytest.approx(1 / 7)  # "e"
    with pytest.raises(ValueError, match="max_size"):
        cap_vocabulary(corpus, 1)


def test_cap_vocabulary_on_tiny_corpus_matches_counter() -> None:
    from collections import Counter

    corpus = load_wikitext2(TINY)
    capped = cap_vocabulary(corpus, 50)
    counts = Counter(direct_tokens(TINY / "train.txt"))
    kept = set(capped.dictionary.idx2word) - {"<eos>", "<unk>"}
    threshold = min(counts[w] for w in kept)
    assert len(capped.dictionary) == 50
    assert all(counts[w] <= threshold for w in counts if w not in kept and w not in ("<eos>", "<unk>"))
    words = capped.dictionary.idx2word
    expected = [w if w in kept or w == "<eos>" else "<unk>" for w in direct_tokens(TINY / "valid.txt")]
    assert [words[i] for i in capped.valid.tolist()] == expected


def test_unigram_perplexity_known_value() -> None:
    # counts + 1 = [3, 2, 1] over 6: p(0) = 1/2, p(1) = 1/3 -> perplexity sqrt(2 * 3)
    assert unigram_perplexity(torch.tensor([0, 0, 1]), torch.tensor([0, 1]), 3) == pytest.approx(math.sqrt(6))
    assert unigram_perplexity(torch.tensor([0]), torch.tensor([2]), 3) == pytest.approx(4.0)  # unseen: 1 / 4
    with pytest.raises(ValueError, match="vocab_size"):
        unigram_perplexity(torch.tensor([0]), torch.tensor([3]), 3)


def test_lm_metrics_known_values() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(torch.tensor(math.log(100.0))) == pytest.approx(100.0)
    assert perplexity(1e4) == math.inf
    with pytest.raises(ValueError, match="non-negative"):
        perplexity(-1.0)
    logits = torch.tensor([[[0.1, 0.9, 0.0], [2.0, 1.0, 0.0]], [[0.0, 0.0, 1.0], [0.0, 3.0, 1.0]]])
    target = torch.tensor([[1, 1], [2, 0]])
    assert next_token_accuracy(logits, target) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="target.shape"):
        next_token_accuracy(logits, target[0])


# --------------------------------------------------------------------------- download


def fake_archive(tmp_path: Path) -> tuple[Path, str]:
    archive = tmp_path / "remote" / ARCHIVE_NAME
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for split in SPLITS:
            zf.write(TINY / f"{split}.txt", f"wikitext-2/wiki.{split}.tokens")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_verifies_extracts_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, digest = fake_archive(tmp_path)
    cache = tmp_path / "cache"
    out = download_wikitext2(cache_dir=cache, url=archive.as_uri(), sha256=digest)
    assert out == cache / "wikitext-2"
    assert (cache / ARCHIVE_NAME).read_bytes() == archive.read_bytes()
    for split in SPLITS:
        assert (out / f"wiki.{split}.tokens").read_bytes() == (TINY / f"{split}.txt").read_bytes()
    assert not list(cache.rglob("*.part"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached download must not fetch again")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    assert download_wikitext2(cache_dir=cache, url=archive.as_uri(), sha256=digest) == out
    assert torch.equal(load_wikitext2(out)["test"], load_wikitext2(TINY)["test"])


def test_checksum_mismatch_leaves_no_file(tmp_path: Path) -> None:
    archive, _ = fake_archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_wikitext2(cache_dir=cache, url=archive.as_uri(), sha256="0" * 64)
    assert list(cache.iterdir()) == []


def test_interrupted_download_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("connection lost")
            return super().read(10)

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Broken(b"x" * 100))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="could not download"):
        download_wikitext2(cache_dir=cache, url="https://example.invalid/w.zip", sha256="0" * 64)
    assert list(cache.iterdir()) == []


def test_unknown_digest_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive, digest = fake_archive(tmp_path)
    cache = tmp_path / "cache"
    download_wikitext2(cache_dir=cache, url=archive.as_uri(), sha256=None)
    assert digest in capsys.readouterr().out
    assert (cache / f"{ARCHIVE_NAME}.sha256").read_text().split()[0] == digest


def test_load_with_download_and_bad_archive(tmp_path: Path) -> None:
    archive, digest = fake_archive(tmp_path)
    root = tmp_path / "root"
    corpus = load_wikitext2(root, download=True, url=archive.as_uri(), sha256=digest)
    assert torch.equal(corpus.train, load_wikitext2(TINY).train)

    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("other/file.txt", "hello")
    wrong_digest = hashlib.sha256(wrong.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="lacks"):
        download_wikitext2(cache_dir=tmp_path / "c2", url=wrong.as_uri(), sha256=wrong_digest)
