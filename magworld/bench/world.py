"""``magworld bench world``: is the generated world recognisable — does it follow the camera and hold still?

On held-out scenes, with reference rows from the same run: **carry (memorize)** (a ground-truth block, one generated
block; carried pixels vs ground truth), **carry (generate)** and **drift** (``drift_steps``-step generate-mode
episodes; each frame vs the previous shown frame reprojected, on the pixels it saw) and **look** PNGs (simulator row
above model row). Definitions: ``docs/notes/code.md``. Output in ``out_dir``: ``results.json``, ``drift.png``,
``look-<style>.png`` (also to ``media_dir`` when set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from magworld.metrics import masked_psnr
from magworld.model.pipeline import WorldModel
from magworld.train.data import HELDOUT_START
from magworld.world import ACTION_TABLE, Pose, Scene, make_scene, poses_array
from magworld.world.actions import ACTION_INDEX
from magworld.world.camera import visible_mask
from magworld.world.trajectory import Trajectory, leave_and_return, random_walk

from .common import format_table, load_world, pyplot, refuse_overwrite, save_figure, save_png, write_json
from .geometry import warp

SEED_OFFSET = 40_000  # held-out scene seeds of this bench: HELDOUT_START + SEED_OFFSET + ...


@dataclass
class WorldBenchConfig:
    checkpoint: str | None = None  # generator .safetensors; None = the bundled model
    memory: str = "mag"
    carry: str | None = None  # reproject generators: sharp (show every carried pixel as shown; None = this) | condition
    sampling_steps: int | None = None  # denoising steps (None = the checkpoint's)
    styles: list[str] = field(default_factory=lambda: ["outdoor", "indoor", "city", "game"])
    carry_episodes: int = 8  # per style: ground-truth block + one generated block
    drift_episodes: int = 2  # per style and path kind (random walk, pan loop)
    drift_steps: int = 100
    look_steps: int = 6  # pans right, then as many back
    resolution: int = 64
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    out_dir: str = "runs/bench/world"
    media_dir: str | None = None  # also write look-<style>.png here (docs/media refreshes the README)
    overwrite: bool = False  # replace an earlier results.json in out_dir

    def __post_init__(self) -> None:
        if self.drift_steps < 20:
            raise ValueError(f"drift_steps must be >= 20 (drift compares the last half with steps 1-10), got {self.drift_steps}")


def round_trip(world: WorldModel, frames: np.ndarray) -> np.ndarray:
    """The autoencoder round trip of uint8 frames (K, H, W, 3)."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(world.device)  # (K, 3, H, W)
        return world.autoencoder.decode(world.autoencoder.encode(x)).permute(0, 2, 3, 1).cpu().numpy()


def _scene(cfg: WorldBenchConfig, style: str, index: int) -> Scene:
    return make_scene(HELDOUT_START + SEED_OFFSET + 1000 * cfg.styles.index(style) + index, style)


def _prompt(scene: Scene, action: int) -> str:
    return f"{scene.caption}, {ACTION_TABLE[action].phrase}"


def carry_memorize(world: WorldModel, cfg: WorldBenchConfig, style: str, rng: np.random.Generator) -> list[dict]:
    """Per episode: carried-pixel PSNR of the first generated block vs ground truth, and the two reference rows."""
    rows = []
    for i in range(cfg.carry_episodes):
        scene = _scene(cfg, style, i)
        start = Pose(rng.uniform(0, 360), rng.uniform(-20, 20), rng.uniform(45, 75))
        action = int(rng.integers(1, len(ACTION_TABLE)))  # any move but "stay"
        blocks = Trajectory("carry", start, (action,)).frame_poses()
        truth = [scene.render_many(b, cfg.resolution) for b in blocks]  # 2 x (F, H, W, 3)
        world.start(truth[0][None], poses_array(blocks[0])[None], [scene.caption])
        made = world.step(poses_array(blocks[1])[None], [_prompt(scene, action)])[0]
        rt = round_trip(world, truth[1])
        for j, pose in enumerate(blocks[1]):
            mask = visible_mask(pose, blocks[0], cfg.resolution, cfg.resolution)
            if mask.mean() < 0.05:
                continue
            rows.append({"style": style, "model": masked_psnr(made[j], truth[1][j], mask),
                         "autoencoder": masked_psnr(rt[j], truth[1][j], mask),
                         "reproject_last": masked_psnr(warp(truth[0][-1], blocks[0][-1], pose), truth[1][j],
                                                       mask & visible_mask(pose, blocks[0][-1:], cfg.resolution, cfg.resolution)),
                         "carried_fraction": float(mask.mean())})
    return rows


def drift_paths(cfg: WorldBenchConfig, rng: np.random.Generator) -> list[Trajectory]:
    """Random walks and pan loops (out 8 steps and back, repeated) of ``drift_steps`` steps."""
    paths = []
    for _ in range(cfg.drift_episodes):
        start = Pose(rng.uniform(0, 360), rng.uniform(-10, 10), 60.0)
        paths.append(random_walk(rng, cfg.drift_steps, start=start))
        loop = leave_and_return(8, str(rng.choice(["pan_left", "pan_right"])), start=start).actions
        paths.append(Trajectory("pan_loop", start, tuple((loop * (cfg.drift_steps // len(loop) + 1))[:cfg.drift_steps])))
    return paths


def carry_generate(world: WorldModel, cfg: WorldBenchConfig, style: str, path: Trajectory, index: int) -> dict:
    """One generate-mode episode: per step, the mean carried-pixel PSNR of each frame vs the previous shown
    frame reprojected to its pose (and the autoencoder round trip of that reprojection, the ceiling)."""
    scene = _scene(cfg, style, 100 + index)
    blocks = path.frame_poses()
    first = scene.render_many(blocks[0], cfg.resolution)
    world.start(first[None], poses_array(blocks[0])[None], [scene.caption])
    last_frame, last_pose = first[-1], blocks[0][-1]
    curve, ceiling = [], []
    for b, action in enumerate(path.actions, start=1):
        made = world.step(poses_array(blocks[b])[None], [_prompt(scene, action)])[0]
        refs = [warp(last_frame, last_pose, p) for p in blocks[b]]
        rts = round_trip(world, np.stack(refs))
        scores, tops = [], []
        for j, pose in enumerate(blocks[b]):
            mask = visible_mask(pose, [last_pose], cfg.resolution, cfg.resolution)
            if mask.mean() >= 0.05:
                scores.append(masked_psnr(made[j], refs[j], mask))
                tops.append(masked_psnr(rts[j], refs[j], mask))
        curve.append(float(np.mean(scores)) if scores else float("nan"))
        ceiling.append(float(np.mean(tops)) if tops else float("nan"))
        last_frame, last_pose = made[-1], blocks[b][-1]
    return {"style": style, "kind": path.kind, "curve": curve, "ceiling": ceiling}


def drift_of(curve: np.ndarray) -> float:
    """Mean of the second half minus mean of the first 10 steps (steps 51-100 minus 1-10 for 100 steps)."""
    return float(np.nanmean(curve[len(curve) // 2:]) - np.nanmean(curve[:10]))


def look(world: WorldModel, cfg: WorldBenchConfig, style: str) -> np.ndarray:
    """uint8 image: simulator row above model row, one ground-truth block then pans right and back."""
    scene = _scene(cfg, style, 200)
    actions = (ACTION_INDEX["pan_right"],) * cfg.look_steps + (ACTION_INDEX["pan_left"],) * cfg.look_steps
    blocks = Trajectory("look", Pose(30.0, 0.0, 60.0), actions).frame_poses()
    truth = [scene.render_many(b, cfg.resolution) for b in blocks]
    world.start(truth[0][None], poses_array(blocks[0])[None], [scene.caption])
    made = [truth[0]] + [world.step(poses_array(blocks[b])[None], [_prompt(scene, a)])[0]
                         for b, a in enumerate(actions, start=1)]
    top = np.concatenate([t[-1] for t in truth], axis=1)  # (H, B*W, 3): last frame of each block
    bottom = np.concatenate([m[-1] for m in made], axis=1)
    return np.concatenate([top, bottom], axis=0)


def _plot_drift(episodes: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for kind in sorted({e["kind"] for e in episodes}):
        curves = np.array([e["curve"] for e in episodes if e["kind"] == kind])
        ax.plot(np.arange(1, curves.shape[1] + 1), np.nanmean(curves, 0), label=f"model, {kind}")
    ceiling = np.array([e["ceiling"] for e in episodes])
    ax.plot(np.arange(1, ceiling.shape[1] + 1), np.nanmean(ceiling, 0), "k--", lw=1, label="autoencoder round trip")
    ax.set_xlabel("generated step")
    ax.set_ylabel("carry PSNR vs shown frame (dB)")
    ax.set_title("Does the world hold still? (generate mode)")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120)


def run(cfg: WorldBenchConfig) -> dict:
    out = Path(cfg.out_dir)
    refuse_overwrite([out / "results.json"], cfg.overwrite)
    torch.set_num_threads(cfg.threads)
    world = load_world(cfg.checkpoint, memory=cfg.memory, carry=cfg.carry, sampling_steps=cfg.sampling_steps,
                       device=cfg.device, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    carry_rows, episodes = [], []
    paths = drift_paths(cfg, rng)
    bar = tqdm(total=len(cfg.styles) * (1 + len(paths) + 1), desc="world bench", unit="job")
    for style in cfg.styles:
        carry_rows += carry_memorize(world, cfg, style, rng)
        bar.update()
        for k, path in enumerate(paths):
            episodes.append(carry_generate(world, cfg, style, path, k))
            bar.update()
        image = look(world, cfg, style)
        save_png(image, out / f"look-{style}.png", scale=2)
        if cfg.media_dir:
            save_png(image, Path(cfg.media_dir) / f"world-{style}.png", scale=2)
        bar.update()
    bar.close()
    summary = summarize(carry_rows, episodes, cfg.styles)
    _plot_drift(episodes, out / "drift.png")
    print(summary["table"])
    path = write_json(out / "results.json", {"benchmark": "world", "config": asdict(cfg), **summary,
                                             "episodes": episodes})
    print(f"wrote {path}, {out / 'drift.png'}, {out}/look-*.png")
    return summary


def summarize(carry_rows: list[dict], episodes: list[dict], styles: list[str]) -> dict:
    rows, per_style = [], {}
    for style in [*styles, "all"]:
        c = [r for r in carry_rows if style in ("all", r["style"])]
        e = [x for x in episodes if style in ("all", x["style"])]
        curves, ceilings = np.array([x["curve"] for x in e]), np.array([x["ceiling"] for x in e])
        stats = {"carry_model": float(np.mean([r["model"] for r in c])),
                 "carry_autoencoder": float(np.mean([r["autoencoder"] for r in c])),
                 "carry_reproject_last": float(np.mean([r["reproject_last"] for r in c])),
                 "generate_carry": float(np.nanmean(curves)), "generate_ceiling": float(np.nanmean(ceilings)),
                 "drift": drift_of(np.nanmean(curves, 0)), "carry_frames": len(c), "episodes": len(e)}
        per_style[style] = stats
        rows.append([style, stats["carry_model"], stats["carry_autoencoder"], stats["carry_reproject_last"],
                     stats["generate_carry"], stats["generate_ceiling"], stats["drift"]])
    header = ["style", "carry vs GT: model (dB)", "autoencoder round trip", "reproject last GT frame",
              "generate: carry vs shown (dB)", "autoencoder ceiling", "drift (dB)"]
    curve = np.nanmean(np.array([x["curve"] for x in episodes]), 0)
    return {"per_style": per_style, "curve": curve.tolist(), "table": format_table(header, rows)}

