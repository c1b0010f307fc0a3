"""Random-walk trajectories in a square box for the path-integration task.

The generator follows Sorscher et al.'s grid-pattern-formation trajectory model:
Rayleigh-distributed forward speed, Gaussian rotation velocity, and a wall rule
that slows the agent and turns it parallel to a wall it is about to hit.
Positions are in metres in the centred box ``[-L/2, L/2]^2``; time steps are
``dt`` seconds long; the velocity input is the per-step displacement in metres
per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..checks import check_int, check_real
from ._sampling import resolve_device


@dataclass(frozen=True)
class Trajectories:
    """A batch of trajectories, time-major.

    ``start + velocity.cumsum(0) == position`` up to float rounding.
    """

    velocity: torch.Tensor  # (T, B, 2) float: displacement per step [v*cos(hd), v*sin(hd)], metres per step
    position: torch.Tensor  # (T, B, 2) float: position after each step, metres, inside [-L/2, L/2]^2
    start: torch.Tensor  # (B, 2) float: position before the first step, metres
    heading: torch.Tensor  # (T, B) float: heading used for each step, radians in [0, 2*pi)


def wall_avoidance(
    position: torch.Tensor, heading: torch.Tensor, box_size: float, border_region: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorscher's wall rule for agents in the centred box of side ``box_size`` (metres).

    An agent is near a wall when its distance to the nearest wall is below
    ``border_region`` and it heads within 90 degrees of that wall's outward
    normal. Such an agent turns by ``sign(a) * (pi/2 - |a|)``, where ``a`` is the
    heading minus the normal angle wrapped to ``[-pi, pi)``: afterwards it runs
    parallel to the wall.

    Args:
        position: (B, 2) positions in metres.
        heading: (B,) headings in radians.
    Returns:
        near_wall (B,) bool and turn (B,) radians (zero where not near a wall).
    """
    if position.dim() != 2 or position.shape[-1] != 2:
        raise ValueError(f"position must have shape (B, 2), got {tuple(position.shape)}")
    if heading.shape != position.shape[:1]:
        raise ValueError(
            f"heading must have shape ({position.shape[0]},) to match position, got {tuple(heading.shape)}"
        )
    half = box_size / 2.0
    x, y = position[:, 0], position[:, 1]
    # Distances to the walls whose outward normals point at angles 0, pi/2, pi, 3*pi/2.
    distances = torch.stack([half - x, half - y, half + x, half + y], dim=0)
    d_wall, nearest = distances.min(dim=0)
    normal_angle = nearest.to(heading.dtype) * (math.pi / 2.0)
    a_wall = torch.remainder(heading - normal_angle + math.pi, 2.0 * math.pi) - math.pi
    near_wall = (d_wall < border_region) & (a_wall.abs() < math.pi / 2.0)
    turn = torch.where(
        near_wall, torch.sign(a_wall) * (math.pi / 2.0 - a_wall.abs()), torch.zeros_like(a_wall)
    )
    return near_wall, turn


def _distance_to_boundary(position: torch.Tensor, direction: torch.Tensor, half: float) -> torch.Tensor:
    """Distance (B,) from ``position`` (B, 2) along unit ``direction`` (B, 2) to the box boundary."""
    safe = torch.where(direction == 0, torch.ones_like(direction), direction)
    to_wall = torch.where(
        direction > 0,
        (half - position) / safe,
        torch.where(direction < 0, (-half - position) / safe, torch.full_like(direction, math.inf)),
    )
    return to_wall.min(dim=-1).values.clamp_min(0.0)


class TrajectoryGenerator:
    """Samples batches of random-walk trajectories on the fly (vectorised over the batch).

    Per step: speed ~ Rayleigh(``speed_scale``) m/s, rotation ~ N(0, ``rotation_sigma``) rad/s
    (times ``dt``); near a wall (see :func:`wall_avoidance`) the speed is multiplied by
    ``wall_slowdown`` and the agent turns away. The agent first moves along its current
    heading, then turns. Start position uniform in the box, start heading uniform in
    [0, 2*pi).

    Sorscher's rule alone lets about 0.7% of positions overshoot a wall by up to about
    10 cm (an agent just outside the border region takes a full-length step). With
    ``hard_walls=True`` (the default) a step that would cross a wall is shortened so the
    agent stops on it; the velocity input is the shortened displacement, so path
    integration stays exact. ``hard_walls=False`` reproduces Sorscher's rule unchanged.
    """

    box_size: float  # side of the square box, metres
    dt: float  # time step, seconds
    seq_len: int  # number of steps T per trajectory
    rotation_sigma: float  # standard deviation of the rotation velocity, rad/s
    speed_scale: float  # Rayleigh scale of the forward speed, m/s
    border_region: float  # distance to a wall below which the wall rule applies, metres
    wall_slowdown: float  # speed factor applied near a wall
    hard_walls: bool  # shorten steps that would cross a wall (positions stay in the box)

    def __init__(
        self,
        box_size: float = 2.2,
        dt: float = 0.02,
        seq_len: int = 50,
        rotation_sigma: float = 11.52,
        speed_scale: float = 0.13 * 2.0 * math.pi,
        border_region: float = 0.03,
        wall_slowdown: float = 0.25,
        hard_walls: bool = True,
    ) -> None:
        self.box_size = check_real(box_size, "box_size", positive=True)
        self.dt = check_real(dt, "dt", positive=True)
        self.seq_len = check_int(seq_len, "seq_len")
        self.rotation_sigma = check_real(rotation_sigma, "rotation_sigma", nonnegative=True)
        self.speed_scale = check_real(speed_scale, "speed_scale", positive=True)
        self.border_region = check_real(border_region, "border_region", nonnegative=True)
        self.wall_slowdown = check_real(wall_slowdown, "wall_slowdown", nonnegative=True)
        if self.wall_slowdown > 1.0:
            raise ValueError(f"wall_slowdown must be in [0, 1], got {self.wall_slowdown}")
        if not isinstance(hard_walls, bool):
            raise TypeError(f"hard_walls must be a bool, got {type(hard_walls).__name__}")
        self.hard_walls = hard_walls

    @property
    def mean_speed(self) -> float:
        """Mean of the Rayleigh speed distribution, ``speed_scale * sqrt(pi/2)`` in m/s."""
        return self.speed_scale * math.sqrt(math.pi / 2.0)

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Trajectories:
        """Draw ``batch_size`` trajectories of ``seq_len`` steps.

        Args:
            batch_size: number of trajectories B.
            generator: source of randomness (same seed, same trajectories); a CUDA
                generator must be used with a CUDA device.
            device: where to sample; defaults to the generator's device, else CPU.
            dtype: floating dtype of the outputs.
        Returns:
            :class:`Trajectories` with velocity (T, B, 2), position (T, B, 2), start (B, 2),
            heading (T, B).
        """
        check_int(batch_size, "batch_size")
        dev = resolve_device(generator, device)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        T, B, half = self.seq_len, batch_size, self.box_size / 2.0
        opts = {"generator": generator, "device": dev, "dtype": dtype}

        position = (torch.rand(B, 2, **opts) * 2.0 - 1.0) * half
        heading = torch.rand(B, **opts) * (2.0 * math.pi)
        # Rayleigh by inversion; 1 - U lies in (0, 1], so the log is finite.
        speeds = self.speed_scale * torch.sqrt(-2.0 * torch.log1p(-torch.rand(T, B, **opts)))
        random_turns = torch.randn(T, B, **opts) * (self.rotation_sigma * self.dt)

        start = position.clone()
        velocity = torch.empty(T, B, 2, device=dev, dtype=dtype)
        positions = torch.empty(T, B, 2, device=dev, dtype=dtype)
        headings = torch.empty(T, B, device=dev, dtype=dtype)
        for t in range(T):
            near_wall, avoid_turn = wall_avoidance(position, heading, self.box_size, self.border_region)
            speed = torch.where(near_wall, speeds[t] * self.wall_slowdown, speeds[t])
            step = speed * self.dt
            direction = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)
            if self.hard_walls:
                step = torch.minimum(step, _distance_to_boundary(position, direction, half))
                new_position = (position + step[:, None] * direction).clamp(-half, half)
                velocity[t] = new_position - position
            else:
                velocity[t] = step[:, None] * direction
                new_position = position + velocity[t]
            positions[t] = new_position
            headings[t] = heading
            position = new_position
            heading = torch.remainder(heading + avoid_turn + random_turns[t], 2.0 * math.pi)
        return Trajectories(velocity=velocity, position=positions, start=start, heading=headings)
