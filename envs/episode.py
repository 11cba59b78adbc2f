"""One world's episode bookkeeping — scene, pose, revisits, reward, info — apart from who draws frames.

The single env and the batched vector env both keep one :class:`Episode` per world and hand the
frame drawing to a backend in one batched call, so their rewards and infos cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from magworld.metrics import PSNR_CAP, frame_metrics
from magworld.world import ACTION_NAMES, ACTION_TABLE, STYLE_NAMES, Pose, Scene, apply_action, make_scene
from magworld.world.trajectory import BLOCK_FRAMES, block_poses

from .reward import RevisitTracker, RewardConfig, step_reward

RESET_OPTIONS = ("scene_seed", "style", "pose")


def check_action(action: Any, n: int = len(ACTION_NAMES)) -> int:
    """The action as an int index, or a ``TypeError``/``ValueError`` that names the valid actions."""
    value = np.asarray(action)
    if value.shape != () or not np.issubdtype(value.dtype, np.integer):
        raise TypeError(f"action must be one integer index in 0..{n - 1} ({', '.join(ACTION_NAMES)}), "
                        f"got {action!r} of dtype {value.dtype}")
    if not 0 <= int(value) < n:
        raise ValueError(f"action {int(value)} is outside Discrete({n}); valid: " + ", ".join(f"{i}={a}" for i, a in enumerate(ACTION_NAMES)))
    return int(value)


class Episode:
    """Scene, camera pose and revisit history of one world; computes reward and info of each block."""

    def __init__(self, resolution: tuple[int, int], reward_cfg: RewardConfig) -> None:
        self.resolution = resolution
        self.reward_cfg = reward_cfg
        self.tracker = RevisitTracker(tolerance=reward_cfg.tolerance)
        self.scene: Scene | None = None
        self.pose = Pose()
        self.frames: np.ndarray | None = None
        self.step_index = 0

    @property
    def started(self) -> bool:
        return self.scene is not None and self.frames is not None

    def begin(self, rng: np.random.Generator, style: str | None, options: dict[str, Any] | None) -> tuple[list[Pose], np.ndarray]:
        """Pick the scene and start pose (from ``rng`` unless ``options`` fix them); returns the first block's poses and truth."""
        options = dict(options or {})
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; allowed: {', '.join(RESET_OPTIONS)}")
        scene_seed = int(options.get("scene_seed", rng.integers(0, 2**31 - 1)))
        style = options.get("style", style)
        if style is None:
            style = STYLE_NAMES[int(rng.integers(len(STYLE_NAMES)))]
        start_yaw = 15.0 * int(rng.integers(0, 24))
        self.scene = make_scene(scene_seed, style)
        self.pose = Pose(**options["pose"]) if "pose" in options else Pose(start_yaw, 0.0, 60.0)
        self.step_index, self.frames = 0, None
        self.tracker.reset()
        poses = [self.pose] * BLOCK_FRAMES
        return poses, self.scene.render_many(poses, self.resolution)

    def started_info(self, frames: np.ndarray, truth: np.ndarray, step_ms: float | None, backend_info: dict[str, Any]) -> tuple[np.ndarray, dict]:
        """Record the first block; returns (observation, reset info)."""
        assert self.scene is not None
        self.frames = frames
        found = self.tracker.observe(0, [self.pose] * BLOCK_FRAMES, frames, self.reward_cfg)
        info = self._info(self.scene.caption, found, truth, step_ms, 0.0, backend_info)
        info["action_table"] = [a.as_dict() for a in ACTION_TABLE]
        return frames[-1].copy(), info

    def plan(self, action: int) -> tuple[Pose, list[Pose], str]:
        """Target pose, per-frame poses and prompt of ``action`` (no state change)."""
        if not self.started:
            raise RuntimeError("call reset() before step()")
        assert self.scene is not None
        target = apply_action(self.pose, action)
        return target, block_poses(self.pose, target), f"{self.scene.caption}, {ACTION_TABLE[action].phrase}"

    def truth(self, poses: list[Pose]) -> np.ndarray:
        assert self.scene is not None
        return self.scene.render_many(poses, self.resolution)

    def commit(self, target: Pose, poses: list[Pose], prompt: str, frames: np.ndarray, truth: np.ndarray,
               step_ms: float | None, backend_info: dict[str, Any]) -> tuple[np.ndarray, float, dict]:
        """Record the generated block; returns (observation, reward, info). ``step_ms``: the backend's
        wall-clock time, reported in info only when given (timing is the machine's, not the world's)."""
        self.pose, self.frames, self.step_index = target, frames, self.step_index + 1
        found = self.tracker.observe(self.step_index, poses, frames, self.reward_cfg)
        revisit_term, reward = step_reward(found, BLOCK_FRAMES, self.reward_cfg)
        return frames[-1].copy(), reward, self._info(prompt, found, truth, step_ms, revisit_term, backend_info)

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue this episode exactly: arrays are copies, the rest is JSON-able."""
        if not self.started:
            raise RuntimeError("call reset() before get_state()")
        assert self.scene is not None and self.frames is not None
        revisit = self.tracker.state()  # one record per distinct pose
        cells = revisit.pop("cells")
        return {
            "scene_seed": self.scene.seed, "style": self.scene.style, "pose": self.pose.as_dict(), "step_index": self.step_index,
            "frames": self.frames.copy(), "cells": cells, **{f"revisit_{k}": v for k, v in revisit.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot` (validates shapes before changing anything)."""
        frames = np.asarray(state["frames"])
        h, w = self.resolution
        if frames.shape != (BLOCK_FRAMES, h, w, 3) or frames.dtype != np.uint8:
            raise ValueError(f"state frames have shape {frames.shape} {frames.dtype}, this env needs ({BLOCK_FRAMES}, {h}, {w}, 3) uint8: "
                             "was the state saved from an env with another resolution?")
        for key in ("revisit_frames", "revisit_block_frames"):
            if np.shape(state[key])[1:] != (h, w, 3):
                raise ValueError(f"state {key} have shape {np.shape(state[key])}, this env needs (N, {h}, {w}, 3)")
        scene = make_scene(int(state["scene_seed"]), str(state["style"]))
        self.scene, self.pose, self.step_index = scene, Pose(**state["pose"]), int(state["step_index"])
        self.frames = frames.copy()
        self.tracker.load({"cells": state["cells"], **{k[len("revisit_"):]: v for k, v in state.items() if k.startswith("revisit_")}})

    def _info(self, prompt: str, found, truth: np.ndarray, step_ms: float | None, revisit_term: float, backend_info: dict[str, Any]) -> dict[str, Any]:
        assert self.scene is not None and self.frames is not None
        exact = truth is self.frames  # the simulator backend: the frames are the ground truth
        gt = [{"psnr": PSNR_CAP, "ssim": 1.0} if exact else frame_metrics(f, t) for f, t in zip(self.frames, truth)]
        return {
            "pose": self.pose.as_dict(), "prompt": prompt, "frames": self.frames.copy(), "is_revisit": found.is_revisit,
            "revisit": found.mean_metrics(),
            "gt": {"psnr": float(np.mean([m["psnr"] for m in gt])), "ssim": float(np.mean([m["ssim"] for m in gt]))},
            "coverage": self.tracker.coverage, "reward_terms": {"revisit": revisit_term, "new_cells": found.new_cells},
            "caption": self.scene.caption, "style": self.scene.style, "scene_seed": self.scene.seed, **backend_info,
            **({} if step_ms is None else {"step_ms": float(step_ms)}),
        }
