"""One world's episode bookkeeping — scene, pose, revisits, reward, info — apart from who draws the frames; the single
and the vector env keep one per world, so their rewards and infos cannot drift apart."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from magworld.metrics import PSNR_CAP, frame_metrics
from magworld.revisit import (RevisitScore, RevisitTracker, directly_seen_blocks, memory_only_mask,
                              min_memory_pixels, reference_bound, score_revisit)
from magworld.world import ACTION_NAMES, ACTION_TABLE, STYLE_NAMES, Pose, Scene, apply_action, make_scene
from magworld.world.trajectory import BLOCK_FRAMES, block_poses

from .reward import RewardConfig, step_reward

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
        self.min_pixels = min_memory_pixels(*resolution, reward_cfg.min_memory_fraction)
        self.blocks: dict[int, np.ndarray] = {}  # block index -> (F, 3) poses of the blocks seen directly this step and next
        self.last = RevisitScore(None, None, 0, self.min_pixels)  # the last observation's revisit
        self.reference_bound = reference_bound(*resolution)[1]
        self.scene: Scene | None = None
        self.pose = Pose()
        self.frames: np.ndarray | None = None
        self.step_index = 0

    @property
    def started(self) -> bool:
        return self.scene is not None and self.frames is not None

    def start(self, backend, world: int, rng: np.random.Generator, style: str | None, options: dict[str, Any] | None,
              timing: bool) -> tuple[np.ndarray, dict]:
        """Begin an episode of world ``world``: scene and start pose from ``rng`` unless ``options`` fix them, the
        ground-truth first block through ``backend.start``; returns (observation, reset info)."""
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
        self.reference_bound = reference_bound(*self.resolution, (0.0, self.pose.pitch, self.pose.fov))[1]  # yaw-invariant
        poses = [self.pose] * BLOCK_FRAMES
        self.blocks = {0: np.stack([p.as_array() for p in poses])}
        truth = self.scene.render_many(poses, self.resolution)
        noise_seed = int(rng.integers(0, 2**31 - 1))
        began = time.perf_counter()
        self.frames = backend.start(world, self.scene, poses, truth, noise_seed)
        step_ms = (time.perf_counter() - began) * 1e3 if timing else None
        new_cells = self.tracker.add_cells(poses)
        self.tracker.record(0, self.pose, self.frames[-1])
        found = self.last = RevisitScore(None, None, 0, self.min_pixels)
        info = self._info(self.scene.caption, found, new_cells, truth, step_ms, backend.info(world))
        info["action_table"] = [a.as_dict() for a in ACTION_TABLE]
        return self.frames[-1].copy(), info

    def plan(self, action: int) -> tuple[Pose, list[Pose], str]:
        """Target pose, per-frame poses and prompt of ``action`` (no state change)."""
        if not self.started:
            raise RuntimeError("call reset() before step()")
        assert self.scene is not None
        target = apply_action(self.pose, action)
        return target, block_poses(self.pose, target), f"{self.scene.caption}, {ACTION_TABLE[action].phrase}"

    def commit(self, plan: tuple[Pose, list[Pose], str], frames: np.ndarray, step_ms: float | None, backend,
               world: int) -> tuple[np.ndarray, float, dict]:
        """Record the block ``backend`` drew for :meth:`plan`; returns (observation, reward, info). ``step_ms``: the
        backend's wall-clock time, reported only when given (timing is the machine's, not the world's)."""
        assert self.scene is not None
        (target, poses, prompt), truth = plan, frames if backend.exact else self.scene.render_many(plan[1], self.resolution)
        self.pose, self.frames, self.step_index = target, frames, self.step_index + 1
        found = self.last = self.score(target, frames[-1])
        new_cells = self.tracker.add_cells(poses)
        self.tracker.record(self.step_index, target, frames[-1])
        self.blocks[self.step_index] = np.stack([p.as_array() for p in poses])
        keep = set(directly_seen_blocks(self.step_index)) | set(directly_seen_blocks(self.step_index + 1))
        self.blocks = {b: v for b, v in self.blocks.items() if b in keep}
        reward = step_reward(found, new_cells, self.reward_cfg)
        return frames[-1].copy(), reward, self._info(prompt, found, new_cells, truth, step_ms, backend.info(world))

    def score(self, pose: Pose, frame: np.ndarray) -> RevisitScore:
        """The revisit score of the observation ``frame`` at ``pose`` drawn this step (before it is recorded):
        :mod:`magworld.revisit`'s rule."""
        step = self.step_index
        ref = self.tracker.reference(pose, step)
        if ref is None:
            return RevisitScore(None, None, 0, self.min_pixels)
        seen = np.concatenate([self.blocks[b] for b in directly_seen_blocks(step)])  # (K, 3) poses seen directly
        mask = memory_only_mask(pose.as_array(), seen, *self.resolution)  # (H, W)
        reference = self.tracker.frame(ref) if np.count_nonzero(mask) >= self.min_pixels else None  # only if scored
        return score_revisit(frame, reference, mask, self.min_pixels, self.reward_cfg, ref, self.tracker.first_step(ref))

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue this episode exactly: arrays are copies, the rest is JSON-able."""
        if not self.started:
            raise RuntimeError("call reset() before get_state()")
        assert self.scene is not None and self.frames is not None
        revisit = self.tracker.state()  # one record per distinct pose, the reference store compressed
        cells = revisit.pop("cells")
        kept = sorted(self.blocks)
        return {
            "scene_seed": self.scene.seed, "style": self.scene.style, "pose": self.pose.as_dict(), "step_index": self.step_index,
            "frames": self.frames.copy(), "cells": cells, **{f"revisit_{k}": v for k, v in revisit.items()},
            "seen_blocks": np.asarray(kept, dtype=np.int64), "seen_poses": np.stack([self.blocks[b] for b in kept]),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot` (validates shapes before changing anything)."""
        frames = np.asarray(state["frames"])
        h, w = self.resolution
        if frames.shape != (BLOCK_FRAMES, h, w, 3) or frames.dtype != np.uint8:
            raise ValueError(f"state frames have shape {frames.shape} {frames.dtype}, this env needs ({BLOCK_FRAMES}, {h}, {w}, 3) uint8: "
                             "was the state saved from an env with another resolution?")
        missing = sorted({"revisit_store", "revisit_store_sizes", "revisit_frame_shape", "seen_blocks", "seen_poses"} - set(state))
        if missing:
            raise ValueError(f"the state lacks {', '.join(missing)}: it was not saved by MAGWorld-v1 (its reward references "
                             "are compressed and scored on the memory-only region); replay its episode in MAGWorld-v1")
        if tuple(np.asarray(state["revisit_frame_shape"]).reshape(-1)) not in ((h, w, 3), (0, 0, 3)) \
                or np.shape(state["revisit_block_frames"])[1:] != (h, w, 3):
            raise ValueError(f"state reference frames have shape {tuple(np.asarray(state['revisit_frame_shape']))}, this env "
                             f"needs ({h}, {w}, 3): was the state saved from an env with another resolution?")
        blocks, seen = np.asarray(state["seen_blocks"], dtype=np.int64).reshape(-1), np.asarray(state["seen_poses"], dtype=np.float64)
        step = int(state["step_index"])
        needed = set(directly_seen_blocks(step)) | set(directly_seen_blocks(step + 1))
        if seen.shape != (len(blocks), BLOCK_FRAMES, 3) or needed - set(blocks.tolist()):
            raise ValueError(f"state seen_poses {seen.shape} / seen_blocks {blocks.tolist()} do not hold the blocks "
                             f"{sorted(needed)} seen directly")
        tracker = RevisitTracker(tolerance=self.reward_cfg.tolerance)
        tracker.load({"cells": state["cells"], **{k[len("revisit_"):]: v for k, v in state.items() if k.startswith("revisit_")}})
        scene = make_scene(int(state["scene_seed"]), str(state["style"]))
        self.scene, self.pose, self.step_index, self.tracker = scene, Pose(**state["pose"]), step, tracker
        self.blocks = {int(b): p.copy() for b, p in zip(blocks, seen)}
        self.frames = frames.copy()

    def _info(self, prompt: str, found: RevisitScore, new_cells: int, truth: np.ndarray, step_ms: float | None,
              backend_info: dict[str, Any]) -> dict[str, Any]:
        assert self.scene is not None and self.frames is not None
        exact = truth is self.frames  # the simulator backend: the frames are the ground truth
        gt = [{"psnr": PSNR_CAP, "ssim": 1.0} if exact else frame_metrics(f, t) for f, t in zip(self.frames, truth)]
        return {
            "pose": self.pose.as_dict(), "prompt": prompt, "frames": self.frames.copy(), "is_revisit": found.is_revisit,
            "revisit": {k: v for k, v in found.as_info().items() if k != "is_revisit"},
            "reference_bytes": self.tracker.reference_bytes, "reference_bound_bytes": self.reference_bound,
            "gt": {"psnr": float(np.mean([m["psnr"] for m in gt])), "ssim": float(np.mean([m["ssim"] for m in gt]))},
            "coverage": self.tracker.coverage, "reward_terms": {"revisit": found.score, "new_cells": new_cells},
            "caption": self.scene.caption, "style": self.scene.style, "scene_seed": self.scene.seed, **backend_info,
            **({} if step_ms is None else {"step_ms": float(step_ms)}),
        }
