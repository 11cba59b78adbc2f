"""The revisit suite: a fixed, seeded set of leave-and-return episodes (MAG-Bench analogue).

Every episode is one held-out scene (seed >= 1_000_000; training draws smaller seeds) and one camera
path in three parts, each a run of actions from :data:`magworld.world.actions.ACTION_TABLE`:

* **prefix** — from the start pose, 4–5 pan steps (60°–75°) to view *A*. The view returned to is A,
  never the first block: window memories keep the first block as a sink, so a loop back to the start
  would flatter them. At the default 60° field of view A does not overlap the first block at all.
* **outbound** — leave A (given as ground truth in the ``memorize`` protocol, generated in the
  ``generate_all`` protocol);
* **return** — come back to A (always generated). Its frames whose pose matches an earlier frame's
  pose are the *revisit* frames that are scored against the history; the others are *novel* frames.

Kinds (``SuiteConfig.kinds`` gives how many of each per style; outbound keeps going away from the
start, in the prefix's direction):

=========  ============================================================================
``pan``    out-and-back pan of 45°–180° (3–12 steps) and back
``aba``    pan 45°–120° to B, hold still 1–3 steps at B, pan back to A
``abca``   pan 45°–120°, tilt 10°–30°; back: pan the other way at the new pitch, tilt back, hold 1 step
``tilt_pan`` tilt 10°–30°, then pan 45°–120°; back: the same way in reverse
``zoom``   zoom out (or in) 20°–30° of field of view, pan 0°–60°; back in reverse
``far50``  far revisit: pan 180° to the opposite side, wander there 50 blocks (yaw within ±45° of the opposite
           view, pitch ±10°, fov 50°–70°: no ray of A is seen), come back to the opposite view, pan 180° back to A
``far200`` the same with 200 blocks of wandering
=========  ============================================================================

The far kinds are not in the default suite (count 0; the default episodes are unchanged); the preset
``bench/revisit=far`` runs them.

Same ``SuiteConfig`` → same episodes, bit for bit (a ``numpy`` generator seeded with
``[seed, style index]``). The episode order within a style cycles through the kinds, so the first
``n`` episodes of a style (the ``quick`` subset) cover ``min(n, 5)`` kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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

    @property
    def return_steps(self) -> int:
        return len(self.trajectory) - self.prefix - self.outbound

    @property
    def signature(self) -> tuple[int, int, int]:
        """(prefix, outbound, return) step counts: episodes with the same signature run as one batch."""
        return self.prefix, self.outbound, self.return_steps

    def action_names(self) -> list[str]:
        return [ACTION_TABLE[a].name for a in self.trajectory.actions]

    def describe(self) -> dict:
        """JSON-able summary; action runs written ``"pan_right*4"``."""
        names = self.action_names()
        parts = {"prefix": names[: self.prefix], "outbound": names[self.prefix : self.prefix + self.outbound],
                 "return": names[self.prefix + self.outbound :]}
        return {"index": self.index, "seed": self.seed, "style": self.style, "kind": self.kind,
                "start": self.trajectory.start.as_dict(), **{k: _runs(v) for k, v in parts.items()}}


def _runs(names: list[str]) -> str:
    """``["pan_right", "pan_right", "stay"]`` -> ``"pan_right*2 stay*1"``."""
    runs: list[list] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return " ".join(f"{name}*{count}" for name, count in runs)


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
