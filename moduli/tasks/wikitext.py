"""Word-level WikiText-2: corpus, loaders, and BPTT batching.

Tokenisation follows PyTorch's word_language_model example: every line of a split
(empty lines included) becomes ``line.split() + ['<eos>']``; the vocabulary covers
every split that is loaded, in the order the splits are given.

A split may be stored as ``<split>.txt`` or under the official archive's name
``wiki.<split>.tokens``, directly in the root directory or in ``root/wikitext-2/``
(the layout the archive extracts to).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..errors import DataError
from .wikitext_download import WIKITEXT2_SHA256, WIKITEXT2_URL, download_wikitext2

EOS = "<eos>"
UNK = "<unk>"  # WikiText's own token for rare words; also what a capped vocabulary maps to
SPLITS: tuple[str, ...] = ("train", "valid", "test")


class Dictionary:
    """Bidirectional word <-> index map, indices in order of first appearance."""

    word2idx: dict[str, int]  # word -> index
    idx2word: list[str]  # index -> word

    def __init__(self) -> None:
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word: str) -> int:
        """Index of ``word``, adding it if new."""
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx


class Corpus:
    """Token-id streams of named splits over one shared :class:`Dictionary`."""

    dictionary: Dictionary  # vocabulary over all splits
    splits: dict[str, torch.Tensor]  # split name -> (N,) int64 token ids
    sources: dict[str, str]  # split name -> description of the text it was read from

    def __init__(self) -> None:
        self.dictionary = Dictionary()
        self.splits = {}
        self.sources = {}

    @classmethod
    def from_lines(
        cls, split_lines: Mapping[str, Sequence[str]], sources: Mapping[str, str] | None = None
    ) -> Corpus:
        """Build a corpus from lines of text per split (each line gives its words plus ``<eos>``)."""
        if not isinstance(split_lines, Mapping) or not split_lines:
            raise ValueError("split_lines must be a non-empty mapping split name -> list of lines")
        corpus = cls()
        for name, lines in split_lines.items():
            if isinstance(lines, str) or not isinstance(lines, Sequence):
                raise TypeError(f"split {name!r} must be a sequence of lines (str), got {type(lines).__name__}")
            ids: list[int] = []
            for line in lines:
                for word in line.split() + [EOS]:
                    ids.append(corpus.dictionary.add_word(word))
            corpus.splits[name] = torch.tensor(ids, dtype=torch.long)
            corpus.sources[name] = (sources or {}).get(name, name)
        return corpus

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.splits:
            raise KeyError(f"split {name!r} is not in this corpus; it holds {sorted(self.splits)}")
        return self.splits[name]

    @property
    def train(self) -> torch.Tensor:
        """(N,) int64 ids of the training split."""
        return self["train"]

    @property
    def valid(self) -> torch.Tensor:
        """(N,) int64 ids of the validation split."""
        return self["valid"]

    @property
    def test(self) -> torch.Tensor:
        """(N,) int64 ids of the test split."""
        return self["test"]


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file (universal newlines, line endings removed).

    Raises :class:`DataError` if the file is missing, empty (no tokens), contains NUL
    bytes, or is not valid UTF-8 (binary or truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise DataError(
            f"{path} contains NUL bytes: it is binary or corrupted, not a token file; replace it with "
            "the real text file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not valid UTF-8 text (bad byte at offset {err.start} of {len(raw)}): the file "
            "is binary or truncated; replace it with a complete copy"
        ) from err
    if not text.split():
        raise DataError(f"{path} is empty (no tokens); replace it with the real text file")
    return [line.rstrip("\n") for line in io.StringIO(text, newline=None)]


def split_candidates(root: Path, split: str) -> list[Path]:
    """Paths where ``split`` may be stored under ``root``, in order of preference."""
    return [
        root / f"{split}.txt",
        root / f"wiki.{split}.tokens",
        root / "wikitext-2" / f"wiki.{split}.tokens",
    ]


def find_split(root: Path, split: str) -> Path | None:
    """The first existing file among :func:`split_candidates`, or None."""
    for candidate in split_candidates(root, split):
        if candidate.is_file():
            return candidate
    return None


def _check_root(root: object) -> Path:
    if not isinstance(root, (str, Path)):
        raise TypeError(f"root must be a str or pathlib.Path, got {type(root).__name__}")
    return Path(root)


def _missing_message(root: Path, missing: Sequence[str]) -> str:
    parts = []
    for split in missing:
        first, *others = split_candidates(root, split)
        parts.append(f"{first} (also looked for {', '.join(str(o) for o in others)})")
    return (
        "WikiText-2 split file missing: "
        + "; ".join(parts)
        + ". Fix: put the file there (either name works), or call load_wikitext2(..., download=True) "
        "when online (downloads the official archive into the root directory), or, offline, use "
        "load_offline_splits(root), which trains on part of valid.txt."
    )


def load_wikitext2(
    root: str | Path,
    splits: Sequence[str] = SPLITS,
    download: bool = False,
    url: str = WIKITEXT2_URL,
    sha256: str | None = WIKITEXT2_SHA256,
) -> Corpus:
    """Load the named WikiText-2 splits from ``root`` into one :class:`Corpus`.

    Args:
        root: directory holding ``<split>.txt`` or ``wiki.<split>.tokens`` (also looked for
            under ``root/wikitext-2/``).
        splits: which of "train", "valid", "test" to load; the vocabulary covers these.
        download: when files are missing, fetch the official archive into ``root`` first.
        url: archive location, passed to :func:`download_wikitext2`.
        sha256: expected digest of the archive, passed to :func:`download_wikitext2`.
    Raises:
        DataError naming every missing file and how to provide it; or naming an empty or
        corrupted file.
    """
    root = _check_root(root)
    if isinstance(splits, str) or not isinstance(splits, Sequence) or not splits:
        raise TypeError(f"splits must be a non-empty sequence drawn from {SPLITS}, got {splits!r}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or len(set(splits)) != len(splits):
        raise ValueError(f"splits must be distinct names from {SPLITS}, got {list(splits)}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")

    missing = [s for s in splits if find_split(root, s) is None]
    if missing and download:
        download_wikitext2(cache_dir=root, url=url, sha256=sha256)
        missing = [s for s in splits if find_split(root, s) is None]
    if missing:
        raise DataError(_missing_message(root, missing))

    paths = {s: find_split(root, s) for s in splits}
    lines = {s: read_lines(p) for s, p in paths.items()}
    return Corpus.from_lines(lines, sources={s: str(p) for s, p in paths.items()})


def load_offline_splits(
    root: str | Path,
    train_from: str = "valid",
    test_from: str = "test",
    valid_fraction: float = 0.1,
) -> tuple[Corpus, str]:
    """Train/validation/test roles from two available splits, when the train split is absent.

    The lines of ``train_from`` are cut once: the first ``1 - valid_fraction`` train and the
    rest validate; ``test_from`` tests. The vocabulary covers both files.

    Returns:
        (corpus with "train", "valid", "test" splits, a sentence describing the roles, e.g.
        "trained on valid.txt lines [0, 3384), validated on valid.txt lines [3384, 3760),
        tested on test.txt (all 4358 lines)"). The sentence is also in ``corpus.sources``.
    """
    root = _check_root(root)
    for name, value in (("train_from", train_from), ("test_from", test_from)):
        if value not in SPLITS:
            raise ValueError(f"{name} must be one of {SPLITS}, got {value!r}")
    if train_from == test_from:
        raise ValueError(
            f"train_from and test_from must differ (both are {train_from!r}): testing on training "
            "text would leak"
        )
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)):
        raise TypeError(f"valid_fraction must be a number in (0, 1), got {valid_fraction!r}")
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")

    missing = [s for s in (train_from, test_from) if find_split(root, s) is None]
    if missing:
        raise DataError(_missing_message(root, missing))
    train_path, test_path = find_split(root, train_from), find_split(root, test_from)
    assert train_path is not None and test_path is not None
    train_lines, test_lines = read_lines(train_path), read_lines(test_path)
    cut = int(len(train_lines) * (1.0 - valid_fraction))
    if cut < 1 or cut >= len(train_lines):
        raise DataError(
            f"{train_path} has {len(train_lines)} lines: too few to cut with valid_fraction="
            f"{valid_fraction} into non-empty train and validation parts"
        )
    n = len(train_lines)
    sources = {
        "train": f"{train_path.name} lines [0, {cut})",
        "valid": f"{train_path.name} lines [{cut}, {n})",
        "test": f"{test_path.name} (all {len(test_lines)} lines)",
    }
    corpus = Corpus.from_lines(
        {"train": train_lines[:cut], "valid": train_lines[cut:], "test": test_lines}, sources=sources
    )
    roles = f"trained on {sources['train']}, validated on {sources['valid']}, tested on {sources['test']}"
    return corpus, roles


def cap_vocabulary(corpus: Corpus, max_size: int, count_split: str = "train") -> Corpus:
    """A copy of ``corpus`` whose vocabulary is the ``max_size`` most frequent words.

    Frequencies are counted on ``count_split`` only (the training text, so the test text does
    not choose the vocabulary). ``<eos>`` and ``<unk>`` are always kept; every other word
    outside the kept set becomes ``<unk>`` in every split. Ties are broken by first appearance,
    so the result is deterministic. New indices: ``<eos>``, ``<unk>``, then by frequency.

    Args:
        corpus: the full corpus.
        max_size: vocabulary size after capping (>= 2, counting ``<eos>`` and ``<unk>``).
        count_split: the split whose word counts choose the vocabulary.
    Returns:
        a new corpus with the same split names and ``sources``; ``corpus`` is left unchanged.
    """
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2:
        raise ValueError(f"max_size must be an int >= 2 (room for <eos> and <unk>), got {max_size!r}")
    counts = torch.bincount(corpus[count_split], minlength=len(corpus.dictionary))
    # Stable sort on descending counts: equal counts keep their order of first appearance.
    order = torch.sort(-counts, stable=True).indices.tolist()
    kept = [EOS, UNK]
    for idx in order:
        if len(kept) >= max_size or counts[idx] == 0:
            break
        word = corpus.dictionary.idx2word[idx]
        if word not in (EOS, UNK):
            kept.append(word)
    capped = Corpus()
    for word in kept:
        capped.dictionary.add_word(word)
    unk = capped.dictionary.word2idx[UNK]
    remap = torch.full((len(corpus.dictionary),), unk, dtype=torch.long)
    for word, new_idx in capped.dictionary.word2idx.items():
        if word in corpus.dictionary:
            remap[corpus.dictionary.word2idx[word]] = new_idx
    for name, ids in corpus.splits.items():
        capped.splits[name] = remap[ids]
        capped.sources[name] = corpus.sources[name]
    return capped


def unk_rate(ids: torch.Tensor, dictionary: Dictionary) -> float:
    """Fraction of the tokens in ``ids`` (N,) that are ``<unk>`` (0 if the vocabulary has none)."""
    if UNK not in dictionary or ids.numel() == 0:
        return 0.0
    return float((ids == dictionary.word2idx[UNK]).float().mean())


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a token stream (N,) into ``batch_size`` contiguous columns -> (N // B, B).

    Column b holds tokens ``[b * (N // B), (b + 1) * (N // B))``; the last ``N % B`` tokens
    are dropped. Stays on ``data``'s device.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got {getattr(data, 'shape', type(data))}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    rows = data.shape[0] // batch_size
    if rows < 2:
        raise ValueError(
            f"{data.shape[0]} tokens give fewer than 2 rows at batch_size={batch_size}; use a smaller "
            "batch size or more text"
        )
    return data[: rows * batch_size].view(batch_size, rows).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BPTT window starting at row ``i`` of ``source`` (S, B).

    Returns:
        input (T, B) = rows [i, i + T) and target (T, B) = rows [i + 1, i + 1 + T),
        with T = min(bptt, S - 1 - i).
    """
    if not isinstance(source, torch.Tensor) or source.dim() != 2:
        raise ValueError(f"source must be a 2-D (S, B) tensor from batchify, got {getattr(source, 'shape', type(source))}")
    if isinstance(bptt, bool) or not isinstance(bptt, int) or bptt < 1:
        raise ValueError(f"bptt must be a positive int, got {bptt!r}")
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < source.shape[0] - 1:
        raise ValueError(f"i must be an int in [0, {source.shape[0] - 1}) for a source of {source.shape[0]} rows, got {i!r}")
    length = min(bptt, source.shape[0] - 1 - i)
    return source[i : i + length], source[i + 1 : i + 1 + length]
