"""The revisit suite: a fixed, seeded set of leave-and-return episodes (MAG-Bench analogue).

Each episode is one held-out scene (seed >= 1,000,000) and a path of actions in three parts: a **prefix** of 4-5
pans to the view *A* (never the first block, which window memories keep as a sink), an **outbound** path leaving A
(given in ``memorize``, generated in ``generate_all``) and a **return** to A (always generated; frames at an earlier
frame's pose are the scored *revisits*). Kinds (:data:`KINDS`: ``pan``, ``aba``, ``abca``, ``tilt_pan``, ``zoom`` and
the far revisits ``far50``/``far200``, preset ``bench/revisit=far``) are described in ``docs/notes/code.md``. Same
``SuiteConfig`` -> same episodes (numpy seeded with ``[seed, style index]``); a style's episodes cycle through its
kinds, so the ``quick`` subset covers ``min(n, 5)`` kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Sequence

import numpy as np

from magworld.world import ACTION_TABLE, STYLE_NAMES, Pose, Trajectory
from magworld.world.actions import ACTION_INDEX, INVERSE_ACTION

HELD_OUT_SEED = 1_000_000
KINDS = ("pan", "aba", "abca", "tilt_pan", "zoom", "far50", "far200")
FAR_KINDS = {"far50": 50, "far200": 200}  # blocks of wandering on the far side before the return


@dataclass
class SuiteConfig:
    seed: int = HELD_OUT_SEED  # scene seeds are seed, seed + 1, ...; must be >= 1_000_000 (held out)
    styles: list[str] = field(default_factory=lambda: list(STYLE_NAMES))
    kinds: dict[str, int] = field(default_factory=lambda: {"pan": 16, "aba": 8, "abca": 8, "tilt_pan": 6, "zoom": 6})
    resolution: int = 64
    fov: float = 60.0

    def __post_init__(self) -> None:
        if self.seed < HELD_OUT_SEED:
            raise ValueError(f"suite seed must be >= {HELD_OUT_SEED} (smaller scene seeds are used for training), got {self.seed}")
        bad = [s for s in self.styles if s not in STYLE_NAMES]
        if bad:
            raise ValueError(f"unknown styles {bad}; choose from {', '.join(STYLE_NAMES)}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or any(n < 0 for n in self.kinds.values()):
            raise ValueError(f"kinds must map names from {', '.join(KINDS)} to counts >= 0, got {self.kinds}")

    @property
    def episodes_per_style(self) -> int:
        return sum(self.kinds.values())


@dataclass(frozen=True)
class Episode:
    """One leave-and-return episode. Blocks: 0 = start block, then one block per action."""

    index: int
    seed: int
    style: str
    kind: str
    trajectory: Trajectory
    prefix: int  # action steps start -> A
    outbound: int  # action steps leaving A

    @property
    def blocks(self) -> int:
        return len(self.trajectory) + 1

    @property
    def history_blocks(self) -> int:
        """Blocks before the return path: the start block, the prefix and the outbound path."""
        return 1 + self.prefix + self.outbound

    def describe(self) -> dict:
        """JSON-able summary; action runs written ``"pan_right*4"``."""
        names = [ACTION_TABLE[a].name for a in self.trajectory.actions]
        parts = {"prefix": names[: self.prefix], "outbound": names[self.prefix : self.prefix + self.outbound],
                 "return": names[self.prefix + self.outbound :]}
        return {"index": self.index, "seed": self.seed, "style": self.style, "kind": self.kind,
                "start": self.trajectory.start.as_dict(), **{k: _runs(v) for k, v in parts.items()}}


def _runs(names: list[str]) -> str:
    """``["pan_right", "pan_right", "stay"]`` -> ``"pan_right*2 stay*1"``."""
    return " ".join(f"{name}*{len(list(run))}" for name, run in groupby(names))


def _path(kind: str, rng: np.random.Generator, pan: str) -> tuple[list[str], list[str]]:
    """Outbound and return action names of one episode of ``kind`` leaving in direction ``pan``."""
    back = INVERSE_ACTION[pan]
    if kind == "pan":
        k = int(rng.integers(3, 13))  # 45°..180°
        return [pan] * k, [back] * k
    if kind == "aba":
        k, hold = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        return [pan] * k + ["stay"] * hold, [back] * k
    tilt = str(rng.choice(["tilt_up", "tilt_down"]))
    if kind == "abca":
        k, m = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        return [pan] * k + [tilt] * m, [back] * k + [INVERSE_ACTION[tilt]] * m + ["stay"]
    if kind == "tilt_pan":
        k, m = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        return [tilt] * m + [pan] * k, [back] * k + [INVERSE_ACTION[tilt]] * m
    if kind == "zoom":
        zoom, z, k = str(rng.choice(["zoom_out", "zoom_in"])), int(rng.integers(2, 4)), int(rng.integers(0, 5))
        return [zoom] * z + [pan] * k, [back] * k + [INVERSE_ACTION[zoom]] * z
    if kind in FAR_KINDS:
        half = [pan] * 12  # 180°: the opposite side of the world
        return half + _wander(rng, FAR_KINDS[kind]), [back] * 12
    raise ValueError(f"unknown episode kind {kind!r}; choose one of {', '.join(KINDS)}")


WANDER_LIMITS = {"yaw": 3, "pitch": 1, "fov": 1}  # steps of 15°, 10°, 10° away from the opposite view at 60° fov
_WANDER_MOVES = {"pan_left": ("yaw", -1), "pan_right": ("yaw", 1), "tilt_up": ("pitch", 1), "tilt_down": ("pitch", -1),
                 "zoom_in": ("fov", -1), "zoom_out": ("fov", 1)}


def _wander(rng: np.random.Generator, blocks: int) -> list[str]:
    """``blocks`` random actions that keep the camera within :data:`WANDER_LIMITS` of where it starts (the view opposite
    A: yaw within ±45°, pitch within ±10°, fov 50°–70°, so no frame shares a ray with A), then the moves back to it."""
    state = dict.fromkeys(WANDER_LIMITS, 0)
    actions = []
    for _ in range(blocks):
        allowed = ["stay"] + [a for a, (axis, d) in _WANDER_MOVES.items() if abs(state[axis] + d) <= WANDER_LIMITS[axis]]
        action = str(rng.choice(allowed))
        if action != "stay":
            axis, d = _WANDER_MOVES[action]
            state[axis] += d
        actions.append(action)
    for action, (axis, d) in _WANDER_MOVES.items():  # undo: back to the opposite view, level, 60°
        if state[axis] * d < 0:
            actions += [action] * abs(state[axis])
    return actions


def build_suite(cfg: SuiteConfig) -> list[Episode]:
    """All episodes of the suite, style by style (``episodes_per_style`` each)."""
    episodes: list[Episode] = []
    for s, style in enumerate(cfg.styles):
        rng = np.random.default_rng([cfg.seed, STYLE_NAMES.index(style)])
        order = [kind for round_ in range(max(cfg.kinds.values(), default=0)) for kind in KINDS
                 if cfg.kinds.get(kind, 0) > round_]  # round robin over kinds
        for kind in order:
            index = len(episodes)
            pan = str(rng.choice(["pan_left", "pan_right"]))
            prefix = [pan] * int(rng.integers(4, 6))
            outbound, back = _path(kind, rng, pan)
            start = Pose(float(np.round(rng.uniform(0.0, 360.0), 1)), 0.0, cfg.fov)
            actions = tuple(ACTION_INDEX[a] for a in prefix + outbound + back)
            episodes.append(Episode(index=index, seed=cfg.seed + index, style=style, kind=kind,
                                    trajectory=Trajectory(kind, start, actions), prefix=len(prefix), outbound=len(outbound)))
    return episodes


def quick_subset(episodes: Sequence[Episode], per_style: int) -> list[Episode]:
    """The first ``per_style`` episodes of each style (they cover the kinds round robin)."""
    seen: dict[str, int] = {}
    out = []
    for ep in episodes:
        if seen.get(ep.style, 0) < per_style:
            out.append(ep)
            seen[ep.style] = seen.get(ep.style, 0) + 1
    return out
