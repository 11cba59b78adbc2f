"""``magworld bench render``: frames/s of the ground-truth renderer (single thread, numpy), on uniformly random poses
(the worst case) and on an env random walk's lattice poses (whose yaw-independent geometry is cached)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from magworld.world import Pose, make_scene
from magworld.world.trajectory import random_walk

from .common import format_table, refuse_overwrite, time_calls, write_json


@dataclass
class RenderBenchConfig:
    resolutions: list[int] = field(default_factory=lambda: [64, 256])
    styles: list[str] = field(default_factory=lambda: ["outdoor", "indoor", "city", "game"])
    frames: int = 300
    seed: int = 0
    out_dir: str = "runs/bench/render"  # git-ignored; the committed results: out_dir=bench-results/render
    overwrite: bool = False  # replace an earlier results.json in out_dir


def run(cfg: RenderBenchConfig) -> dict:
    refuse_overwrite([f"{cfg.out_dir}/results.json"], cfg.overwrite)
    rows, results = [], []
    jobs = [(r, s) for r in cfg.resolutions for s in cfg.styles]
    for resolution, style in tqdm(jobs, desc="render bench"):
        scene = make_scene(cfg.seed, style)
        first = time_calls(lambda: scene.render(Pose(), resolution), repeats=1, warmup=0)[0]  # paints the panorama
        rng = np.random.default_rng(cfg.seed)
        poses = [Pose(*p) for p in zip(rng.uniform(0, 360, cfg.frames), rng.uniform(-30, 30, cfg.frames), rng.uniform(30, 90, cfg.frames))]
        it = iter(poses * 2)
        per_frame = time_calls(lambda: scene.render(next(it), resolution), repeats=cfg.frames, warmup=5)
        fps = float(1.0 / np.median(per_frame))
        walk = [p for block in random_walk(rng, cfg.frames).frame_poses() for p in block]
        it_walk = iter(walk * 2)
        per_walk_frame = time_calls(lambda: scene.render(next(it_walk), resolution), repeats=cfg.frames, warmup=5)
        walk_fps = float(1.0 / np.median(per_walk_frame))
        results.append({"resolution": resolution, "style": style, "median_ms": float(np.median(per_frame) * 1e3),
                        "frames_per_s": fps, "env_walk_frames_per_s": walk_fps, "first_frame_s": float(first)})
        rows.append([f"{resolution}x{resolution}", style, float(np.median(per_frame) * 1e3), fps, walk_fps, float(first)])
    print(format_table(["resolution", "style", "median ms/frame", "frames/s (random poses)",
                        "frames/s (env random walk)", "first frame s (paints panorama)"], rows))
    path = write_json(f"{cfg.out_dir}/results.json", {"benchmark": "render", "config": cfg.__dict__, "results": results})
    print(f"wrote {path}")
    return {"results": results}
