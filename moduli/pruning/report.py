"""Sparsity report: zero counts per matrix and over all listed matrices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from .masks import check_masks, check_weights, pruned_count

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class MatrixSparsity:
    """Sparsity of one named tensor."""

    name: str  # parameter name
    shape: tuple[int, ...]  # tensor shape
    total: int  # number of entries
    zeros: int  # entries equal to 0 once the mask (if any) is applied
    pruned: int | None  # entries the mask removes (False); None without a mask
    sparsity: float  # zeros / total
    share: float  # total / total over all listed tensors (this tensor's share of the denominator)


@dataclass(frozen=True)
class SparsityReport:
    """Per-matrix and global sparsity; ``denominator`` names what the global figure divides by."""

    matrices: list[MatrixSparsity] = field(default_factory=list)  # one row per listed tensor
    zeros: int = 0  # zeros summed over all listed tensors
    total: int = 0  # entries summed over all listed tensors (the global denominator)
    sparsity: float = 0.0  # zeros / total
    denominator: str = ""  # plain-words description of `total`

    def __getitem__(self, name: str) -> MatrixSparsity:
        for row in self.matrices:
            if row.name == name:
                return row
        raise KeyError(f"no matrix named {name!r}; listed: {[r.name for r in self.matrices]}")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-serialisable)."""
        out = asdict(self)
        for row in out["matrices"]:
            row["shape"] = list(row["shape"])
        return out

    def to_frame(self) -> pandas.DataFrame:
        """One row per tensor plus a final row named "global"."""
        import pandas as pd

        rows = [asdict(row) for row in self.matrices]
        rows.append(
            {"name": "global", "shape": None, "total": self.total, "zeros": self.zeros,
             "pruned": None, "sparsity": self.sparsity, "share": 1.0}
        )
        return pd.DataFrame(rows).set_index("name")


def sparsity_report(
    weights: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None = None
) -> SparsityReport:
    """Count zeros of the listed tensors.

    Args:
        weights: name -> tensor (any shape).
        masks: optional name -> bool mask (True = kept) for some or all of the names. An entry
            counts as zero if its mask removes it or its value is exactly 0.

    Returns:
        A ``SparsityReport`` whose global sparsity is zeros / entries over the listed tensors
        only (the ``denominator`` field spells out which).
    """
    check_weights(weights)
    masks = {} if masks is None else masks
    check_masks(masks, weights)
    grand_total = sum(w.numel() for w in weights.values())
    rows = []
    for name, w in weights.items():
        is_zero = w.detach() == 0
        pruned = None
        if name in masks:
            mask = masks[name].to(w.device)
            is_zero = is_zero | ~mask
            pruned = pruned_count(mask)
        zeros = int(is_zero.sum().item())
        rows.append(
            MatrixSparsity(
                name=name, shape=tuple(w.shape), total=w.numel(), zeros=zeros, pruned=pruned,
                sparsity=zeros / w.numel(), share=w.numel() / grand_total,
            )
        )
    zeros = sum(row.zeros for row in rows)
    return SparsityReport(
        matrices=rows,
        zeros=zeros,
        total=grand_total,
        sparsity=zeros / grand_total,
        denominator=f"{grand_total} entries of the listed matrices: {', '.join(weights)}",
    )
