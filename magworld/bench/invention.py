"""``magworld bench invent``: is what the world *invents* drawn like the simulator draws it, or a soft smear?

Generate-mode random walks on held-out scenes (block 0 given). Two sample sets against the simulator's frames at the
same poses: **invented strips** (the shown frame's pixels the previous shown frame did not see,
:func:`~magworld.world.camera.invented_mask`) and **late frames** (steps ``late_from``..``walk_steps``). Per row: the
Fréchet distance of the judge's cell descriptors (:mod:`magworld.bench.features`) and the detail ratio
(:func:`~magworld.metrics.detail_ratio`). Reference rows, the val/test seed split and the figures:
``docs/notes/invention.md``. Output: ``table.md``, ``results.json``, ``invent.png``, ``look-late.png``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from tqdm import tqdm

from magworld.metrics import detail, detail_ratio
from magworld.model.pipeline import WorldModel, sha256
from magworld.protocol import play_blocks
from magworld.train.data import HELDOUT_START
from magworld.world import ACTION_TABLE, Pose, Scene, make_scene, poses_array
from magworld.world.camera import invented_mask
from magworld.world.trajectory import Trajectory, random_walk

from .baselines import ShiftBaseline
from .common import format_table, load_world, pyplot, refuse_overwrite, save_figure, save_png, write_json
from .features import (FEATURES_PATH, FeatureNet, cell_moments, frechet_from_moments, gaussian,
                       load_feature_net)
from .world import round_trip

SPLIT_SEEDS = {"val": HELDOUT_START + 60_000, "test": HELDOUT_START + 70_000}  # + 1000 * style + episode (+ 500)
SPLIT_SPAN = 4_000  # seeds per split: 4 styles x 1000
OTHER_SEEDS = 500  # the other-seeds row: + 500 (so at most 500 episodes per style)
REFERENCE = "simulator"


@dataclass
class InventBenchConfig:
    checkpoint: str | None = None  # generator .safetensors (or weights folder); None = the bundled model
    memory: str = "mag"
    sampling_steps: int | None = None  # denoising steps (None = the checkpoint's)
    split: str = "val"  # val: for every choice; test: once, for the README
    quick: bool = False  # quick_episodes per style instead of episodes (candidate checks, < 3 min on one thread)
    episodes: int = 12  # per style
    quick_episodes: int = 2
    walk_steps: int = 60
    late_from: int = 31  # late frames: steps late_from..walk_steps
    styles: list[str] = field(default_factory=lambda: ["outdoor", "indoor", "city", "game"])
    min_invented: float = 0.05  # strips smaller than this fraction of the frame are skipped
    blur_sigma: float = 1.5  # px, the "blur" reference row
    grain_sigma: float = 8.0  # grey levels per channel, the "grain" reference row
    batch: int = 16  # worlds stepped together
    features: str | None = None  # judge weights (None = the shipped magworld/assets/bench/invent-features.safetensors)
    look_steps: int = 6  # late steps shown per style in look-late.png
    resolution: int = 64
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    name: str | None = None  # model label (None: "bundled" or the checkpoint's stem)
    out_dir: str | None = None  # None: runs/bench/invent/<name>-<split>
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.split not in SPLIT_SEEDS:
            raise ValueError(f"bench.split must be one of {', '.join(SPLIT_SEEDS)}, got {self.split!r}")
        if not 1 <= self.late_from <= self.walk_steps:
            raise ValueError(f"late_from must be in 1..walk_steps ({self.walk_steps}), got {self.late_from}")
        if not 1 <= self.per_style <= OTHER_SEEDS:
            raise ValueError(f"episodes per style must be in 1..{OTHER_SEEDS}, got {self.per_style}")
        if self.name is None:
            self.name = "bundled" if self.checkpoint is None else Path(self.checkpoint).stem
        if self.out_dir is None:
            self.out_dir = f"runs/bench/invent/{self.name}-{self.split}"

    @property
    def per_style(self) -> int:
        return self.quick_episodes if self.quick else self.episodes


def split_seeds(split: str, style_index: int, episode: int, other: bool = False) -> int:
    """Scene seed of an evaluated episode (or of its other-seeds twin)."""
    return SPLIT_SEEDS[split] + 1000 * style_index + episode + (OTHER_SEEDS if other else 0)


# --- image measures ---------------------------------------------------------------------------------------------
def gaussian_blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 (N, H, W, 3) blurred by the judge's :func:`~magworld.bench.features.gaussian`, rounded back to uint8."""
    blurred = gaussian(rearrange(torch.from_numpy(frames).float(), "n h w c -> n c h w"), sigma)
    return np.clip(rearrange(blurred, "n c h w -> n h w c").numpy() + 0.5, 0, 255).astype(np.uint8)


def add_grain(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames plus Gaussian noise of ``sigma`` grey levels, independent per pixel and channel."""
    return np.clip(frames + rng.normal(0.0, sigma, frames.shape) + 0.5, 0, 255).astype(np.uint8)


# --- episodes ---------------------------------------------------------------------------------------------------
def walks(cfg: InventBenchConfig, style_index: int) -> list[Trajectory]:
    """The style's random walks (the same for every model, deterministic in seed, split and style)."""
    rng = np.random.default_rng([cfg.seed, list(SPLIT_SEEDS).index(cfg.split), style_index])
    return [random_walk(rng, cfg.walk_steps, start=Pose(rng.uniform(0, 360), rng.uniform(-10, 10), 60.0))
            for _ in range(cfg.per_style)]


def rollout(world, scenes: list[Scene], paths: list[Trajectory], first: np.ndarray) -> np.ndarray:
    """uint8 (E, S + 1, F, H, W, 3): block 0 given (``first`` is the simulator's), then one generated block per step."""
    poses = np.stack([poses_array(p.frame_poses()) for p in paths])  # (E, S + 1, F, 3)
    prompts = [[""] + [f"{s.caption}, {ACTION_TABLE[a].phrase}" for a in p.actions] for s, p in zip(scenes, paths)]
    return play_blocks(world, first, poses, [s.caption for s in scenes], prompts, 1)


def render_walks(scenes: list[Scene], paths: list[Trajectory], size: int) -> np.ndarray:
    """uint8 (E, S + 1, F, H, W, 3): the simulator's frames along each walk."""
    return np.stack([np.stack([s.render_many(b, size) for b in p.frame_poses()]) for s, p in zip(scenes, paths)])


def strip_samples(paths: list[Trajectory], size: int, min_invented: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The (episode, step) pairs scored on their invented strip and the strips, bool (K, H, W)."""
    keys, masks = [], []
    for e, path in enumerate(paths):
        shown = invented_mask([block[-1].as_array() for block in path.frame_poses()], 1, size)  # vs the step before
        for b, mask in enumerate(shown[1:], start=1):
            if mask.mean() >= min_invented:
                keys.append((e, b))
                masks.append(mask)
    return keys, np.stack(masks) if masks else np.zeros((0, size, size), bool)


# --- the run ----------------------------------------------------------------------------------------------------
def row_names(cfg: InventBenchConfig) -> dict[str, str]:
    """Row key -> label in the table."""
    return {"other_seeds": "simulator, other seeds", "autoencoder": "autoencoder round trip",
            "blur": f"simulator blurred (σ {cfg.blur_sigma:g} px)", "grain": f"simulator + grain (σ {cfg.grain_sigma:g})",
            "shift": "shift baseline", "model": f"model: {cfg.name}"}


def collect(cfg: InventBenchConfig, world: WorldModel, bar: tqdm) -> dict:
    """Every row's strip and late-frame samples (uint8 frames) plus the strips; rows share poses and samples."""
    rng = np.random.default_rng([cfg.seed, 7])
    strips = {k: [] for k in [REFERENCE, *row_names(cfg)]}
    late = {k: [] for k in strips}
    masks, looks = [], []
    for k, style in enumerate(cfg.styles):
        paths = walks(cfg, k)
        for lo in range(0, len(paths), cfg.batch):
            chunk = paths[lo:lo + cfg.batch]
            idx = range(lo, lo + len(chunk))
            scenes = [make_scene(split_seeds(cfg.split, k, e), style) for e in idx]
            others = [make_scene(split_seeds(cfg.split, k, e, other=True), style) for e in idx]
            rows = {REFERENCE: render_walks(scenes, chunk, cfg.resolution)}
            rows["other_seeds"] = render_walks(others, chunk, cfg.resolution)
            rows["model"] = rollout(world, scenes, chunk, rows[REFERENCE])
            rows["shift"] = rollout(ShiftBaseline(), scenes, chunk, rows[REFERENCE])
            flat = rows[REFERENCE].reshape(-1, *rows[REFERENCE].shape[-3:])  # (E*(S+1)*F, H, W, 3)
            rows["autoencoder"] = np.concatenate([round_trip(world, flat[i:i + 256]) for i in range(0, len(flat), 256)]
                                                 ).reshape(rows[REFERENCE].shape)
            rows["blur"] = gaussian_blur(flat, cfg.blur_sigma).reshape(rows[REFERENCE].shape)
            rows["grain"] = add_grain(rows[REFERENCE], cfg.grain_sigma, rng)
            keys, chunk_masks = strip_samples(chunk, cfg.resolution, cfg.min_invented)
            masks.append(chunk_masks)
            for name, frames in rows.items():
                strips[name].append(np.stack([frames[e, b, -1] for e, b in keys]) if keys else frames[:0, 0, -1])
                late[name].append(frames[:, cfg.late_from:].reshape(-1, *frames.shape[-3:]))
            if lo == 0:
                looks.append((rows[REFERENCE][0, cfg.walk_steps - cfg.look_steps + 1:, -1],
                              rows["model"][0, cfg.walk_steps - cfg.look_steps + 1:, -1]))
            bar.update(len(chunk))
    return {"strips": {k: np.concatenate(v) for k, v in strips.items()}, "late": {k: np.concatenate(v) for k, v in late.items()},
            "masks": np.concatenate(masks), "looks": looks}


def score(samples: dict, judge: FeatureNet, names: dict[str, str]) -> dict:
    """FD and detail ratio of every row against the simulator, on strips and on late frames."""
    masks = samples["masks"]
    moments = {k: cell_moments(judge, v, masks) for k, v in samples["strips"].items()}
    late = {k: cell_moments(judge, v) for k, v in samples["late"].items()}
    rows = {}
    for key, label in names.items():
        rows[key] = {"label": label,
                     "fd_strips": frechet_from_moments(*moments[key][:2], *moments[REFERENCE][:2]),
                     "fd_late": frechet_from_moments(*late[key][:2], *late[REFERENCE][:2]),
                     "detail_strips": detail_ratio(samples["strips"][key], samples["strips"][REFERENCE], masks),
                     "detail_late": detail_ratio(samples["late"][key], samples["late"][REFERENCE])}
    reference = {"detail_strips": detail(samples["strips"][REFERENCE], masks), "detail_late": detail(samples["late"][REFERENCE]),
                 "strip_samples": len(masks), "strip_fraction": float(masks.mean()) if len(masks) else 0.0,
                 "late_samples": len(samples["late"][REFERENCE]), "strip_cells": moments[REFERENCE].count,
                 "late_cells": late[REFERENCE].count, "feature_dim": judge.dim}
    return {"rows": rows, "reference": reference}


def summarize(result: dict) -> str:
    header = ["row", "FD strips", "FD late frames", "detail ratio strips", "detail ratio late frames"]
    table = [[r["label"], r["fd_strips"], r["fd_late"], r["detail_strips"], r["detail_late"]] for r in result["rows"].values()]
    ref = result["reference"]
    return (format_table(header, table) + f"\n\nFD against the simulator at the same poses: {ref['strip_cells']} cells of "
            f"{ref['strip_samples']} strips (mean {100 * ref['strip_fraction']:.0f}% of the frame), {ref['late_cells']} cells of "
            f"{ref['late_samples']} late frames; {ref['feature_dim']} features per cell. Simulator detail: {ref['detail_strips']:.2f} (strips), {ref['detail_late']:.2f} (late frames) "
            f"grey levels per pixel.")


def _plot(result: dict, path: Path) -> None:
    plt = pyplot()
    rows = list(result["rows"].values())
    labels = [r["label"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(rows) + 1.8), sharey=True)
    y = np.arange(len(rows))
    for ax, (a, b), title in zip(axes, [("fd_strips", "fd_late"), ("detail_strips", "detail_late")],
                                 ["Fréchet distance to the simulator (lower: closer)", "detail ratio (row / simulator)"]):
        ax.barh(y - 0.2, [r[a] for r in rows], 0.4, label="invented strips")
        ax.barh(y + 0.2, [r[b] for r in rows], 0.4, label="late frames")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    axes[1].axvline(1.0, color="k", lw=0.8, ls="--")
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].invert_yaxis()
    save_figure(fig, path, dpi=110)


def run(cfg: InventBenchConfig) -> dict:
    out = Path(cfg.out_dir)
    refuse_overwrite([out / "results.json"], cfg.overwrite)
    torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    judge = load_feature_net(cfg.features or FEATURES_PATH)
    world = load_world(cfg.checkpoint, memory=cfg.memory, sampling_steps=cfg.sampling_steps, device=cfg.device,
                       seed=cfg.seed)
    bar = tqdm(total=len(cfg.styles) * cfg.per_style, desc=f"invent bench ({cfg.split})", unit="episode")
    samples = collect(cfg, world, bar)
    bar.close()
    result = score(samples, judge, row_names(cfg))
    table = summarize(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    _plot(result, out / "invent.png")
    looks = [np.concatenate(list(frames), axis=1) for pair in samples["looks"] for frames in pair]  # per style:
    save_png(np.concatenate(looks, axis=0), out / "look-late.png", scale=2)  # simulator row over model row
    seeds = {s: [SPLIT_SEEDS[s], SPLIT_SEEDS[s] + SPLIT_SPAN - 1] for s in SPLIT_SEEDS}
    write_json(out / "results.json", {"benchmark": "invent", "config": asdict(cfg), **result, "seed_ranges": seeds,
                                      "features": {"path": str(cfg.features or FEATURES_PATH),
                                                   "sha256": sha256(cfg.features or FEATURES_PATH)},
                                      "seconds": time.perf_counter() - started})
    print(table)
    print(f"wrote {out}/results.json, table.md, invent.png, look-late.png ({time.perf_counter() - started:.0f} s)")
    return result

