"""The MAG world model in the benchmarks: its rows (``mag``, ``window``, ``full``, ``mag-ring``, ``mag-recall``) and its
step speed.

Both live here rather than in :mod:`magworld.model.pipeline` because they need the simulator (the
speed probe renders a held-out scene) and the benchmark's policy specs; the model never imports the world.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from magworld.model.pipeline import WorldModel
from magworld.world import ACTION_TABLE, make_scene, poses_array
from magworld.world.actions import ACTION_INDEX
from magworld.world.trajectory import sweep


def world_model_policy(memory: str, checkpoint: str | None = None, label: str | None = None, **options) -> WorldModel:
    """A :class:`WorldModel` with memory policy ``memory``: the bundled generator, or ``checkpoint``;
    ``options`` go to :class:`WorldModel` (e.g. ``steps``, ``device``, ``seed``); ``label`` names the row."""
    if checkpoint:
        return WorldModel.from_checkpoint(checkpoint, memory=memory, name=label, **options)
    return WorldModel.from_bundled(memory=memory, name=label, **options)


def measure_speed(world: WorldModel, steps: int = 20, warmup: int = 5, worlds: int = 1, seed: int = 1_000_000,
                  resolution: int = 64) -> dict[str, float]:
    """Steps/s of ``world.step`` on a held-out scene panning right: median over ``steps`` timed steps after
    ``warmup`` (the cache grows as in an episode)."""
    scene = make_scene(seed, "outdoor")
    blocks = sweep(warmup + steps, "pan_right").frame_poses()
    poses = poses_array(blocks)  # (B, F, 3)
    first = np.stack([scene.render_many(blocks[0], resolution)] * worlds)  # (N, F, H, W, 3)
    world.start(first, np.repeat(poses[:1], worlds, axis=0), [scene.caption] * worlds)
    prompt = f"{scene.caption}, {ACTION_TABLE[ACTION_INDEX['pan_right']].phrase}"
    times = []
    for block in poses[1:]:
        t0 = time.perf_counter()
        world.step(np.repeat(block[None], worlds, axis=0), [prompt] * worlds)
        times.append(time.perf_counter() - t0)
    timed = np.array(times[warmup:])
    median = float(np.median(timed))
    return {"steps_per_s": 1.0 / median, "frames_per_s": worlds * len(blocks[0]) / median, "median_ms": 1e3 * median,
            "p90_ms": 1e3 * float(np.percentile(timed, 90)), "worlds": worlds, "timed_steps": len(timed),
            "cache_frames": world.cache_frames(), "cache_bytes": world.cache_bytes(), "threads": torch.get_num_threads()}
