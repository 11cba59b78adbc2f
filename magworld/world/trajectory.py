"""Camera trajectories as action sequences: random walks, sweeps and leave-and-return loops.

A trajectory is data (a start pose and action indices); its step poses and per-frame poses are
derived from the action table, so an environment that replays the actions lands on the same poses.
Leave-and-return loops (ABA, ABCA, yaw 0° → 90° → 0°) are what the revisit benchmark is built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actions import ACTION_INDEX, ACTION_NAMES, INVERSE_ACTION, apply_action
from .camera import Pose, interpolate

BLOCK_FRAMES = 3


def block_poses(start: Pose, end: Pose, frames: int = BLOCK_FRAMES) -> list[Pose]:
    """Per-frame poses of a block moving from ``start`` to ``end``; the last frame is at ``end``."""
    return [interpolate(start, end, (k + 1) / frames) for k in range(frames)]


@dataclass(frozen=True)
class Trajectory:
    kind: str
    start: Pose
    actions: tuple[int, ...]

    def __post_init__(self) -> None:
        bad = [a for a in self.actions if not 0 <= a < len(ACTION_NAMES)]
        if bad:
            raise ValueError(f"trajectory actions must be indices 0..{len(ACTION_NAMES) - 1}, got {bad[:3]}")

    def __len__(self) -> int:
        return len(self.actions)

    def poses(self) -> list[Pose]:
        """Camera pose after each step, starting with ``start`` (length ``len(self) + 1``)."""
        out = [self.start]
        for a in self.actions:
            out.append(apply_action(out[-1], a))
        return out

    def frame_poses(self) -> list[list[Pose]]:
        """Per-block frame poses: block 0 is the still start block, then one block per action."""
        steps = self.poses()
        return [[self.start] * BLOCK_FRAMES] + [block_poses(a, b) for a, b in zip(steps[:-1], steps[1:])]


def _names(*names: str) -> tuple[int, ...]:
    return tuple(ACTION_INDEX[n] for n in names)


def sweep(steps: int, action: str = "pan_right", start: Pose = Pose()) -> Trajectory:
    """The same action every step (a constant pan by default)."""
    return Trajectory("sweep", start, _names(*[action] * steps))


def random_walk(rng: np.random.Generator, steps: int, start: Pose = Pose(), momentum: float = 0.6) -> Trajectory:
    """Random actions; with probability ``momentum`` the previous action is repeated (smoother paths)."""
    actions: list[int] = []
    for _ in range(steps):
        if actions and rng.random() < momentum:
            actions.append(actions[-1])
        else:
            actions.append(int(rng.integers(len(ACTION_NAMES))))
    return Trajectory("random_walk", start, tuple(actions))


def leave_and_return(k: int, action: str = "pan_right", hold: int = 0, start: Pose = Pose(), kind: str = "aba") -> Trajectory:
    """A → B → A: ``k`` steps of ``action``, ``hold`` still steps, ``k`` steps of its inverse."""
    if k < 1:
        raise ValueError(f"leave_and_return needs k >= 1 steps out, got {k}")
    return Trajectory(kind, start, _names(*[action] * k, *["stay"] * hold, *[INVERSE_ACTION[action]] * k))


def abca(k: int, m: int, start: Pose = Pose()) -> Trajectory:
    """A → B → C → A around a rectangle (pan right k, tilt up m, pan left k, tilt down m); it comes back exactly when
    ``m * 10°`` stays within the pitch limit."""
    return Trajectory("abca", start, _names(*["pan_right"] * k, *["tilt_up"] * m, *["pan_left"] * k, *["tilt_down"] * m))


def yaw_loop(degrees: float = 90.0, start: Pose = Pose()) -> Trajectory:
    """Yaw 0° → ``degrees`` → 0° in pan steps (``degrees`` must be a multiple of the pan step)."""
    from .actions import PAN_STEP

    k = int(round(degrees / PAN_STEP))
    if k < 1 or abs(k * PAN_STEP - degrees) > 1e-9:
        raise ValueError(f"yaw_loop degrees must be a positive multiple of {PAN_STEP}°, got {degrees}")
    return leave_and_return(k, "pan_right", start=start, kind=f"yaw_loop_{int(degrees)}")
