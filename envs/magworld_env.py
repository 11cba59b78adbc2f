"""MAGWorld-v0: a camera in a 360° world whose frames come from a backend (ground truth or MAG)."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from magworld.world import ACTION_NAMES, ACTION_TABLE, STYLE_NAMES, Pose, Scene, apply_action, make_scene, parse_resolution
from magworld.world.scene import check_style
from magworld.world.trajectory import BLOCK_FRAMES, block_poses

from .backends import make_backend
from .revisit import RevisitTracker, RewardConfig, step_reward


class Latency(float):
    """A wall-clock duration in milliseconds, reported in ``info["step_ms"]``.

    Timing is a property of the machine, not of the world: two ``Latency`` values compare equal to
    each other, so Gymnasium's determinism check (same seed + action -> same info) compares the world
    state and not the clock. Against plain numbers it compares as the float it is.
    """

    def __eq__(self, other: object) -> bool:
        return True if isinstance(other, Latency) else float(self) == other

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = float.__hash__


class MAGWorldEnv(gym.Env):
    """Look around a procedural 360° world; every step the world model draws the next block of frames.

    ## Description
    A camera stands in a seeded scene (outdoor valley, indoor room, city street or game level). Each
    step moves the camera by one action and the backend produces the next **block of 3 frames**:
    ``backend="simulator"`` renders the exact ground truth; the MAG generator backend draws them from
    its compressed memory of what it has shown so far. Coming back to a view tests that memory.

    ## Action Space
    ``Discrete(7)``, in this order (``env.unwrapped.action_table`` has the deltas and prompt phrases):

    | index | name | pose change per step | prompt phrase |
    |---|---|---|---|
    | 0 | stay | none | the camera holds still |
    | 1 | pan_left | yaw -15° | the camera pans left |
    | 2 | pan_right | yaw +15° | the camera pans right |
    | 3 | tilt_up | pitch +10° (max 30°) | the camera tilts up |
    | 4 | tilt_down | pitch -10° (min -30°) | the camera tilts down |
    | 5 | zoom_in | fov -10° (min 30°) | the camera zooms in |
    | 6 | zoom_out | fov +10° (max 90°) | the camera zooms out |

    The block's frames are spread evenly along the move; the observation is its last frame.

    ## Observation Space
    ``Box(0, 255, (H, W, 3), uint8)``: the last frame of the block (``resolution`` = H = W by default 64).

    ## Rewards
    Per step: ``w_revisit * R_revisit + w_explore * new_cells`` (defaults 1.0 and 0.0).
    ``R_revisit`` is the mean over the block's 3 frames of ``score(frame, reference)``, where a frame
    scores only if it is a *revisit*: an earlier step showed a pose within ``tolerance`` (1°) and the
    camera has been farther away since it last saw it (holding still on a view is not a revisit). The reference is the frame of the earliest such visit, and
    ``score = 0.5 * clip((PSNR - 10 dB) / 30 dB, 0, 1) + 0.5 * max(SSIM, 0)`` in [0, 1] (PSNR of
    identical frames is capped at 100 dB). ``new_cells`` counts newly seen 15° x 10° view cells.
    Aggregation for reports: per frame -> per step (mean over the block) -> per episode (mean over steps).

    ## Starting State
    ``reset(seed)`` draws a scene (style and scene seed) and a start yaw (multiple of 15°) from the
    env's RNG; pitch 0°, fov 60°. The first block (3 still frames) is ground truth. ``options`` may
    fix ``scene_seed``, ``style`` and ``pose`` (dict with yaw, pitch, fov).

    ## Episode End
    No termination; truncation after ``max_episode_steps`` (200 at registration).

    ## Info
    ``pose`` (yaw, pitch, fov), ``prompt`` (scene caption + action phrase), ``frames`` (uint8 (3, H, W, 3)),
    ``is_revisit``, ``revisit`` (mean PSNR/SSIM of the revisit frames vs their references, ``frames`` =
    how many), ``gt`` (mean PSNR/SSIM of the block vs ground truth), ``coverage``, ``step_ms``,
    ``reward_terms``, ``caption``, ``style``, ``scene_seed``; ``reset`` adds ``action_table``.

    ## Arguments
    ``gym.make("MAGWorld-v0", backend="simulator", style=None | "outdoor" | "indoor" | "city" | "game",
    resolution=64 | (H, W), reward=RewardConfig | dict, render_mode=None | "rgb_array" | "human")``.

    ## Version History
    * v0: initial release (simulator backend).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 12}
    action_names: tuple[str, ...] = ACTION_NAMES

    def __init__(self, render_mode: str | None = None, backend: str = "simulator", style: str | None = None,
                 resolution: int | tuple[int, int] = 64, reward: RewardConfig | dict | None = None, **backend_kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render_mode {render_mode!r}; choose None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.style = None if style is None else check_style(style)
        self.resolution = parse_resolution(resolution)
        self.reward_cfg = reward if isinstance(reward, RewardConfig) else RewardConfig(**(reward or {}))
        self.backend = make_backend(backend, self.resolution, **backend_kwargs)
        self.action_space = spaces.Discrete(len(ACTION_TABLE))
        self.observation_space = spaces.Box(0, 255, (*self.resolution, 3), dtype=np.uint8)
        self.tracker = RevisitTracker(tolerance=self.reward_cfg.tolerance)
        self.scene: Scene | None = None
        self.pose = Pose()
        self.frames: np.ndarray | None = None
        self.step_index = 0
        self._viewer = None
        self._hud: dict[str, Any] = {}

    @property
    def action_table(self) -> list[dict[str, float | str]]:
        return [a.as_dict() for a in ACTION_TABLE]

    # --- gym API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"scene_seed", "style", "pose"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: scene_seed, style, pose")
        scene_seed = int(options.get("scene_seed", self.np_random.integers(0, 2**31 - 1)))
        style = options.get("style", self.style)
        if style is None:
            style = STYLE_NAMES[int(self.np_random.integers(len(STYLE_NAMES)))]
        start_yaw = 15.0 * int(self.np_random.integers(0, 24))
        pose = Pose(**options["pose"]) if "pose" in options else Pose(start_yaw, 0.0, 60.0)
        self.scene = make_scene(scene_seed, style)
        self.pose, self.step_index = pose, 0
        self.tracker.reset()
        poses = [pose] * BLOCK_FRAMES
        start = time.perf_counter()
        truth = self.scene.render_many(poses, self.resolution)
        self.frames = self.backend.start(self.scene, poses, truth)
        found = self.tracker.observe(0, poses, self.frames, self.reward_cfg)
        info = self._info(self.scene.caption, found, truth, (time.perf_counter() - start) * 1e3, 0.0)
        info["action_table"] = self.action_table
        self._after_step(info, 0.0)
        return self.frames[-1].copy(), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.scene is None or self.frames is None:
            raise RuntimeError("call reset() before step()")
        action = self._check_action(action)
        target = apply_action(self.pose, action)
        poses = block_poses(self.pose, target)
        prompt = f"{self.scene.caption}, {ACTION_TABLE[action].phrase}"
        start = time.perf_counter()
        frames = self.backend.step(poses, prompt)
        step_ms = (time.perf_counter() - start) * 1e3
        truth = frames if self.backend.exact else self.scene.render_many(poses, self.resolution)
        self.pose, self.frames, self.step_index = target, frames, self.step_index + 1
        found = self.tracker.observe(self.step_index, poses, frames, self.reward_cfg)
        revisit_term, reward = step_reward(found, BLOCK_FRAMES, self.reward_cfg)
        info = self._info(prompt, found, truth, step_ms, revisit_term)
        self._after_step(info, reward)
        return frames[-1].copy(), reward, False, False, info

    def render(self) -> np.ndarray | None:
        if self.frames is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "rgb_array":
            return self.frames[-1].copy()
        if self.render_mode == "human":
            self._show()
        return None

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    # --- helpers ------------------------------------------------------------------------------
    def _check_action(self, action: Any) -> int:
        value = np.asarray(action)
        if value.shape != () or not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"action must be one integer index in 0..{self.action_space.n - 1} "
                            f"({', '.join(self.action_names)}), got {action!r} of dtype {value.dtype}")
        if not self.action_space.contains(int(value)):
            raise ValueError(f"action {int(value)} is outside Discrete({self.action_space.n}); valid: "
                             + ", ".join(f"{i}={n}" for i, n in enumerate(self.action_names)))
        return int(value)

    def _info(self, prompt: str, found, truth: np.ndarray, step_ms: float, revisit_term: float) -> dict[str, Any]:
        from magworld.metrics import frame_metrics

        assert self.scene is not None and self.frames is not None
        gt = [frame_metrics(f, t) for f, t in zip(self.frames, truth)]
        new_cells = found.new_cells
        return {
            "pose": self.pose.as_dict(), "prompt": prompt, "frames": self.frames.copy(), "is_revisit": found.is_revisit,
            "revisit": found.mean_metrics(),
            "gt": {"psnr": float(np.mean([m["psnr"] for m in gt])), "ssim": float(np.mean([m["ssim"] for m in gt]))},
            "coverage": self.tracker.coverage, "step_ms": Latency(step_ms),
            "reward_terms": {"revisit": revisit_term, "new_cells": new_cells},
            "caption": self.scene.caption, "style": self.scene.style, "scene_seed": self.scene.seed,
            "backend": self.backend.name, **self.backend.info(),
        }

    def _after_step(self, info: dict[str, Any], reward: float) -> None:
        self._hud = {"pose": info["pose"], "prompt": info["prompt"], "reward": reward, "step_ms": info["step_ms"],
                     "revisit": info["revisit"], "step": self.step_index}
        if self.render_mode == "human":
            self._show()

    def _show(self) -> None:
        from .viewer import Viewer

        if self._viewer is None:
            self._viewer = Viewer(title="MAGWorld-v0", fps=self.metadata["render_fps"])
        assert self.frames is not None
        self._viewer.show(self.frames[-1], self._hud)
