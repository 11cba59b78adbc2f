"""Scripted baseline agents for MAGWorld-v1: ``reset(seed=None)`` at each episode start, ``act(obs, info) -> int``
(they steer by ``info["pose"]``, never by pixels). ``random`` (seeded uniform), ``sweep`` (one action forever),
``loop`` (leave-and-return loops from the start pose: every return is a revisit), ``coverage`` (unseen view cells,
nearest first); ``make_baseline(name, **kwargs)`` builds one from :data:`BASELINES`."""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from magworld.revisit import PITCH_CELLS, YAW_CELLS, view_cell
from magworld.world import ACTION_NAMES, Pose
from magworld.world.actions import ACTION_INDEX, ACTION_TABLE, apply_action
from magworld.world.camera import wrap_degrees

MAX_PLAN_DRAWS = 100
POSE_EPSILON = 1e-6  # degrees; poses closer than this are the same pose


class Agent(Protocol):
    """What every agent provides — the baselines here, the PPO wrapper, anything ``magworld agent eval`` runs."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode; ``seed`` reseeds any randomness (None: the constructor's seed)."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        """The action index for the observation and info the env just returned."""


def _pose(info: dict[str, Any]) -> Pose:
    if "pose" not in info:
        raise KeyError("baseline agents steer by info['pose']: pass the info dict returned by env.reset/env.step")
    return Pose(**info["pose"])


def _action(name: str) -> int:
    if name not in ACTION_INDEX:
        raise ValueError(f"unknown action {name!r}; actions: {', '.join(ACTION_NAMES)}")
    return ACTION_INDEX[name]


class RandomAgent:
    """Uniformly random actions; the same seed gives the same action sequence (``reset()`` replays it)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        return int(self.rng.integers(len(ACTION_TABLE)))


class SweepAgent:
    """Always the same action (``pan_right`` by default): a constant sweep around the world."""

    def __init__(self, action: str = "pan_right") -> None:
        self.action = _action(action)

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        return self.action


def step_toward(pose: Pose, target: Pose) -> int | None:
    """One action that brings ``pose`` closer to ``target`` (yaw first, then pitch, then fov); None when there."""
    d_yaw = wrap_degrees(target.yaw - pose.yaw)
    if abs(d_yaw) > POSE_EPSILON:
        return _action("pan_right" if d_yaw > 0 else "pan_left")
    if abs(target.pitch - pose.pitch) > POSE_EPSILON:
        return _action("tilt_up" if target.pitch > pose.pitch else "tilt_down")
    if abs(target.fov - pose.fov) > POSE_EPSILON:
        return _action("zoom_out" if target.fov > pose.fov else "zoom_in")
    return None


# Straight out-and-back legs (ABA). They keep the set of views small, so most steps are revisits.
LOOP_DIRECTIONS: tuple[tuple[str, ...], ...] = (("pan_right",), ("pan_left",), ("tilt_up",), ("tilt_down",))
# Rectangles come back along a different path (ABCA); they see more new views on the way.
RECTANGLE_DIRECTIONS: tuple[tuple[str, ...], ...] = (("pan_right", "tilt_up"), ("pan_left", "tilt_down"))


class LoopExplorer:
    """Leave-and-return loops around the home pose (the pose at ``reset``): each loop draws a direction (one or two
    actions) and ``k`` in ``[k_min, k_max]``, takes ``k`` steps of each (steps a limit voids are left out: a hold is no
    revisit), then steps straight back home. ``loops_completed`` counts the loops back home."""

    def __init__(self, seed: int | None = None, k_min: int = 1, k_max: int = 4,
                 directions: tuple[tuple[str, ...], ...] = LOOP_DIRECTIONS) -> None:
        if not 1 <= k_min <= k_max:
            raise ValueError(f"loop lengths need 1 <= k_min <= k_max, got k_min={k_min} k_max={k_max}")
        if not directions:
            raise ValueError("LoopExplorer needs at least one direction")
        self.directions = [tuple(_action(name) for name in ([d] if isinstance(d, str) else d)) for d in directions]
        self.seed, self.k_min, self.k_max = seed, k_min, k_max
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(self.seed if seed is None else seed)
        self.home: Pose | None = None
        self.outward: list[int] = []  # actions still to take on the way out
        self.returning = False
        self.loops_completed = 0

    def _plan_loop(self, start: Pose) -> None:
        """Draw a direction and ``k``; keep only the steps that move the camera (limits saturate)."""
        for _ in range(MAX_PLAN_DRAWS):
            direction = self.directions[int(self.rng.integers(len(self.directions)))]
            k = int(self.rng.integers(self.k_min, self.k_max + 1))
            pose, self.outward = start, []
            for action in (a for a in direction for _ in range(k)):
                moved = apply_action(pose, action)
                if moved != pose:
                    self.outward.append(action)
                    pose = moved
            if self.outward:
                return
        raise RuntimeError(f"LoopExplorer: no direction moves the camera away from its home pose {start}")

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        pose = _pose(info)
        if self.home is None:
            self.home = pose
        if self.returning:
            action = step_toward(pose, self.home)
            if action is not None:
                return action
            self.loops_completed += 1
            self.returning = False
        if not self.outward:
            self._plan_loop(self.home)
        action = self.outward.pop(0)
        self.returning = not self.outward
        return action


class CoverageAgent:
    """Visits the 15° x 10° view cells it has not seen, nearest first (ties: the pitch row, then the pan direction),
    starting over when all are seen; ``seed`` picks the first pan direction only."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        seed = self.seed if seed is None else seed
        self.pan_direction = 1 if seed is None or seed % 2 == 0 else -1
        self.visited: set[tuple[int, int]] = set()

    def _yaw_steps(self, here: int, there: int) -> int:
        """Signed pan steps from yaw cell ``here`` to ``there`` along the short arc (ties: current direction)."""
        forward = (there - here) % YAW_CELLS
        backward = forward - YAW_CELLS
        if forward == -backward:
            return forward if self.pan_direction > 0 else backward
        return forward if forward < -backward else backward

    def _target(self, here: tuple[int, int]) -> tuple[int, int]:
        def cost(cell: tuple[int, int]) -> tuple[int, int, int]:
            d_yaw = self._yaw_steps(here[0], cell[0])
            d_pitch = abs(cell[1] - here[1])
            return abs(d_yaw) + d_pitch, d_pitch, 0 if d_yaw * self.pan_direction >= 0 else 1

        unvisited = [(y, p) for p in range(PITCH_CELLS) for y in range(YAW_CELLS) if (y, p) not in self.visited]
        return min(unvisited, key=cost)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> int:
        here = view_cell(_pose(info))  # the env's coverage grid
        self.visited.add(here)
        if len(self.visited) == YAW_CELLS * PITCH_CELLS:
            self.visited = {here}
        target = self._target(here)
        d_yaw = self._yaw_steps(here[0], target[0])
        if d_yaw:
            self.pan_direction = 1 if d_yaw > 0 else -1
            return _action("pan_right" if d_yaw > 0 else "pan_left")
        return _action("tilt_up" if target[1] > here[1] else "tilt_down")


BASELINES: dict[str, Callable[..., Agent]] = {
    "random": RandomAgent, "sweep": SweepAgent, "loop": LoopExplorer, "coverage": CoverageAgent,
}


def make_baseline(name: str, **kwargs: Any) -> Agent:
    """Build the baseline registered as ``name`` with its keyword arguments; clear errors for bad input."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline policy {name!r}; choose one of {', '.join(BASELINES)}")
    try:
        return BASELINES[name](**kwargs)
    except TypeError as error:
        raise TypeError(f"bad arguments {sorted(kwargs)} for baseline {name!r}: {error}") from error
