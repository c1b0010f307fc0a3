"""Place cells: targets, loss and decoding for path integration.

After Sorscher et al., with two tunings (their ``DoG`` option):

- ``"dog"`` (the paper): a softmax-normalised centre Gaussian minus a softmax-normalised wider
  surround Gaussian, shifted to be non-negative and renormalised. At the paper's sigma (0.12 m,
  512 cells in a 2.2 m box) this distribution is within about 0.1 nat of uniform.
- ``"gaussian"`` (Sorscher's ``DoG=False``): the centre term alone, ``softmax(-d^2 / (2 sigma^2))``
  over cells, a peaked distribution.

Either way the population activation at any position is a probability distribution over cells.
Positions and widths are in metres.
"""

from __future__ import annotations

import copy

import torch

from ..checks import check_int, check_real

TUNINGS: tuple[str, ...] = ("dog", "gaussian")  # place-cell tuning curves (see the module docstring)
DECODE_K = 3  # a decoded position is the mean centre of this many most active cells
# A float32 exp(-x) is exactly 0 (or flushed to 0) for x beyond about 87; a DoG whose every
# surround term but the nearest cell's underflows is 0 everywhere and normalises to NaN.
_UNDERFLOW_EXPONENT = 80.0


def _check_positions(name: str, pos: object) -> torch.Tensor:
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., 2), got {type(pos).__name__}")
    if pos.dim() < 1 or pos.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (..., 2), got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {pos.dtype}")
    return pos


class PlaceCells:
    """A fixed population of place cells with centres uniform in the centred box."""

    num_cells: int  # number of cells N
    sigma: float  # width of the centre Gaussian, metres
    surround_scale: float  # surround variance / centre variance (> 1)
    box_size: float  # side of the square box [-L/2, L/2]^2, metres
    seed: int  # seed of the CPU generator that drew the centres
    tuning: str  # "dog" (difference of Gaussians, the paper) or "gaussian" (softmax of a Gaussian)
    centres: torch.Tensor  # (N, 2) float32 centre positions, metres

    def __init__(
        self,
        num_cells: int = 512,
        sigma: float = 0.12,
        surround_scale: float = 2.0,
        box_size: float = 2.2,
        seed: int = 0,
        tuning: str = "dog",
    ) -> None:
        self.num_cells = check_int(num_cells, "num_cells")
        self.sigma = check_real(sigma, "sigma", positive=True)
        self.surround_scale = check_real(surround_scale, "surround_scale", positive=True)
        if self.surround_scale <= 1.0:
            raise ValueError(
                f"surround_scale must be > 1 (the surround is wider than the centre), got {self.surround_scale}"
            )
        self.box_size = check_real(box_size, "box_size", positive=True)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        if tuning not in TUNINGS:
            raise ValueError(f"tuning must be one of {', '.join(TUNINGS)}, got {tuning!r}")
        self.tuning = tuning
        # Drawn on the CPU so that the centres do not depend on the device.
        gen = torch.Generator().manual_seed(seed)
        self.centres = (torch.rand(num_cells, 2, generator=gen) * 2.0 - 1.0) * (self.box_size / 2.0)

    def to(self, device: torch.device | str) -> PlaceCells:
        """Move the centres to ``device`` (in place) and return ``self``."""
        self.centres = self.centres.to(device)
        return self

    def with_tuning(self, tuning: str) -> PlaceCells:
        """The same cells (same centres, widths and box) with another ``tuning``."""
        other = copy.copy(self)
        if tuning not in TUNINGS:
            raise ValueError(f"tuning must be one of {', '.join(TUNINGS)}, got {tuning!r}")
        other.tuning = tuning
        return other

    def activation(self, pos: torch.Tensor) -> torch.Tensor:
        """Population activation at positions ``pos`` (..., 2) in metres -> (..., N).

        Non-negative and summing to 1 over the last axis, shaped by ``self.tuning``. Computed
        on ``pos``'s device and dtype.
        """
        _check_positions("pos", pos)
        centres = self.centres.to(device=pos.device, dtype=pos.dtype)
        sq_dist = ((pos[..., None, :] - centres) ** 2).sum(-1)
        centre = torch.softmax(-sq_dist / (2.0 * self.sigma**2), dim=-1)
        if self.tuning == "gaussian":
            return centre
        surround = torch.softmax(-sq_dist / (2.0 * self.surround_scale * self.sigma**2), dim=-1)
        dog = centre - surround
        # The DoG sums to 0 over cells, so its minimum is <= 0: shift it to 0 and renormalise.
        dog = dog - dog.min(dim=-1, keepdim=True).values
        return dog / dog.sum(dim=-1, keepdim=True)

    def decode(self, activation: torch.Tensor, k: int = DECODE_K) -> torch.Tensor:
        """Decoded position (..., 2), metres: mean centre of the ``k`` most active cells.

        ``activation`` (..., N) may be activations or logits (the ranking is the same).
        """
        self._check_cells("activation", activation)
        check_int(k, "k")
        if k > self.num_cells:
            raise ValueError(f"k must be <= num_cells = {self.num_cells}, got {k}")
        top = activation.topk(k, dim=-1).indices
        centres = self.centres.to(device=activation.device)
        return centres[top].mean(dim=-2)

    def _check_cells(self, name: str, x: object) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (..., {self.num_cells})")
        if x.dim() < 1 or x.shape[-1] != self.num_cells:
            raise ValueError(
                f"{name} must have shape (..., {self.num_cells}) (one entry per place cell), got {tuple(x.shape)}"
            )


def navigation_loss(logits: torch.Tensor, target_activation: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicted cell logits against the place-cell distribution.

    ``-(target * log_softmax(logits)).sum(-1).mean()`` over all leading axes.

    Args:
        logits: (T, B, N) decoder outputs (any leading shape).
        target_activation: same shape, each row a distribution over the N cells.
    Returns:
        scalar tensor (nats per step).
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(target_activation, torch.Tensor):
        raise TypeError("logits and target_activation must be torch.Tensors")
    if logits.shape != target_activation.shape or logits.dim() < 1:
        raise ValueError(
            f"logits and target_activation must have the same shape (..., N), got "
            f"{tuple(logits.shape)} and {tuple(target_activation.shape)}"
        )
    return -(target_activation * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def decoding_error_cm(
    logits: torch.Tensor, position: torch.Tensor, place_cells: PlaceCells, k: int = DECODE_K
) -> float:
    """Mean Euclidean distance, in centimetres, between decoded and true positions.

    Args:
        logits: (T, B, N) predicted cell logits or activations (any leading shape).
        position: (T, B, 2) true positions in metres (same leading shape).
        place_cells: the population that defines the decoding centres.
        k: number of most active cells averaged by :meth:`PlaceCells.decode`.
    """
    if not isinstance(place_cells, PlaceCells):
        raise TypeError(f"place_cells must be a PlaceCells, got {type(place_cells).__name__}")
    _check_positions("position", position)
    place_cells._check_cells("logits", logits)
    if logits.shape[:-1] != position.shape[:-1]:
        raise ValueError(
            f"logits (..., N) and position (..., 2) must share leading axes, got "
            f"{tuple(logits.shape)} and {tuple(position.shape)}"
        )
    decoded = place_cells.decode(logits, k=k).to(position.dtype)
    return float((decoded - position).norm(dim=-1).mean()) * 100.0


def _probe_positions(box_size: float, centres: torch.Tensor, grid: int) -> torch.Tensor:
    """Positions that probe the box: a ``grid`` x ``grid`` lattice (edges included) and the centres."""
    axis = torch.linspace(-box_size / 2.0, box_size / 2.0, grid)
    lattice = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1).reshape(-1, 2)
    return torch.cat([lattice, centres])


def smallest_safe_sigma(cells: PlaceCells, grid: int = 65) -> float:
    """The smallest centre width (metres) at which the DoG tuning of ``cells``' centres cannot
    underflow to NaN anywhere in the box (float32, flush-to-zero included).

    The DoG at a position is NaN only if every surround term but the nearest cell's underflows,
    i.e. if (d_2^2 - d_1^2) / (2 surround_scale sigma^2) exceeds the exponent limit, where d_k is
    the distance to the k-th nearest centre. d_2^2 - d_1^2 <= d_2^2, and d_2 is 1-Lipschitz in the
    position, so its maximum over a lattice of spacing h plus h / sqrt(2) bounds it over the box.
    """
    if cells.num_cells < 2:
        return float("inf")
    probes = _probe_positions(cells.box_size, cells.centres.cpu().float(), grid)
    second = torch.cdist(probes, cells.centres.cpu().float()).topk(2, dim=-1, largest=False).values[:, 1]
    bound = float(second.max()) + cells.box_size / (grid - 1) / 2**0.5
    return bound / (2.0 * cells.surround_scale * _UNDERFLOW_EXPONENT) ** 0.5


def activation_is_finite(cells: PlaceCells, grid: int = 65) -> bool:
    """True if ``cells.activation`` is finite on a lattice over the box and at every centre."""
    probes = _probe_positions(cells.box_size, cells.centres.cpu().float(), grid)
    return bool(torch.isfinite(cells.activation(probes)).all())
