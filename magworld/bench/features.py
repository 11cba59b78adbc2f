"""The judge of :mod:`magworld.bench.invention`: a small fully convolutional CNN trained on simulator views of
training scenes (style, pitch and fov bins, object kinds in view; colour jitter so it reads structure, not palette),
its local cell descriptors (one 160-number descriptor per 4x4 cell wholly inside a mask: mean and std of layers 1 and
2, layer 4, on the frame minus its mean colour) and the Fréchet distance between two descriptor sets. The weights
ship (``magworld/assets/bench/invent-features.safetensors``); ``python -m magworld.bench.features`` retrains them.
Design and what did not work: ``docs/notes/invention.md``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from magworld.model.checkpoint import load_into, save_checkpoint
from magworld.train.data import HELDOUT_START, random_pose
from magworld.world import STYLE_NAMES, Pose, Scene, make_scene
from magworld.world.camera import FOV_MAX, FOV_MIN, PITCH_LIMIT
from magworld.world.paint import angular_offset

FEATURES_PATH = Path(__file__).resolve().parent.parent / "assets" / "bench" / "invent-features.safetensors"
KIND = "invent_features"
OBJECT_KINDS: tuple[str, ...] = ("pine tree", "round tree", "cabin", "rock", "tower",  # outdoor
                                 "question block", "brick platform", "pipe", "coin", "pillar", "flag",  # game
                                 "car", "lamp")  # city
PITCH_BINS = 6
FOV_BINS = 6
CHANNELS = (16, 32, 48, 64, 64)
STRIDES = (1, 2, 1, 2, 1)
CELL = 4  # px: the stride of layer 4, one local descriptor per cell


@dataclass
class FeatureNetConfig:
    scenes_per_style: int = 16  # training scenes (seeds < HELDOUT_START)
    views_per_scene: int = 48
    steps: int = 360
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    resolution: int = 64
    colour_jitter: bool = True  # random channel order, gain and offset per training view: tell styles by structure


class FeatureNet(nn.Module):
    """Fully convolutional classifier; :meth:`features` pools layers 2 and 4 over a mask."""

    def __init__(self) -> None:
        super().__init__()
        ins = (3, *CHANNELS[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, 1) for i, o, s in zip(ins, CHANNELS, STRIDES))
        self.head = nn.Linear(CHANNELS[-1], len(STYLE_NAMES) + PITCH_BINS + FOV_BINS + len(OBJECT_KINDS))

    dim = 2 * CHANNELS[0] + 2 * CHANNELS[1] + CHANNELS[3]  # 160 numbers per cell

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's activations of float frames (N, 3, H, W) in [-1, 1]."""
        out = []
        for conv in self.convs:
            x = F.relu(conv(x))
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.maps(x)[-1].mean(dim=(2, 3)))  # (N, classes) logits

    @torch.no_grad()
    def cells(self, frames: np.ndarray, masks: np.ndarray | None = None, batch: int = 256) -> np.ndarray:
        """float64 (K, dim) local descriptors of uint8 frames (N, H, W, 3): one per 4x4 cell wholly inside the bool
        ``masks`` (N, H, W) (None: every cell), from the frames minus their mean colour."""
        out = []
        for i in range(0, len(frames), batch):
            x = to_input(frames[i:i + batch])
            maps = self.maps(x - x.mean(dim=(2, 3), keepdim=True))
            f = torch.cat([F.avg_pool2d(maps[0], CELL), _std_pool(maps[0], CELL), F.avg_pool2d(maps[1], CELL // 2),
                           _std_pool(maps[1], CELL // 2), maps[3]], 1)  # (B, dim, H/4, W/4)
            keep = torch.ones(len(x), *f.shape[2:], dtype=torch.bool)
            if masks is not None:  # a cell counts when its whole footprint is in the mask
                keep = -F.max_pool2d(-torch.from_numpy(masks[i:i + batch]).float()[:, None], CELL)[:, 0] > 0.5
            out.append(f.permute(0, 2, 3, 1)[keep].double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))


def _std_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Standard deviation over k x k windows (stride k)."""
    mean = F.avg_pool2d(x, k)
    return (F.avg_pool2d(x * x, k) - mean * mean).clamp(min=0).sqrt()


def to_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def view_labels(scene: Scene, pose: Pose) -> tuple[int, int, int, np.ndarray, bool]:
    """(style, pitch bin, fov bin, object kinds in view as float (K,), whether the kinds are known) of a view.
    An object is in view when its azimuth lies within the horizontal field of view."""
    pitch_bin = min(PITCH_BINS - 1, int((pose.pitch + PITCH_LIMIT) / (2 * PITCH_LIMIT) * PITCH_BINS))
    fov_bin = min(FOV_BINS - 1, int((pose.fov - FOV_MIN) / (FOV_MAX - FOV_MIN) * FOV_BINS))
    p = scene.params
    items: list[tuple[str, float]] = []
    if scene.style in ("outdoor", "game"):
        items = [(o["kind"], o["az"]) for o in p["objects"]]
    elif scene.style == "city":
        items = [("car", c["az"]) for c in p["cars"]] + [("lamp", float(a)) for a in p["lamps"]]
    kinds = np.zeros(len(OBJECT_KINDS), dtype=np.float32)
    for kind, az in items:
        if abs(float(angular_offset(np.float64(az), pose.yaw))) <= pose.fov / 2:
            kinds[OBJECT_KINDS.index(kind)] = 1.0
    return STYLE_NAMES.index(scene.style), pitch_bin, fov_bin, kinds, scene.style != "indoor"


def training_views(cfg: FeatureNetConfig) -> dict[str, np.ndarray]:
    """Simulator views of training scenes with their labels (deterministic in ``cfg.seed``)."""
    rng = np.random.default_rng([cfg.seed, 25])
    frames, style, pitch, fov, kinds, known = [], [], [], [], [], []
    for s, name in enumerate(STYLE_NAMES):
        for _ in range(cfg.scenes_per_style):
            scene = make_scene(int(rng.integers(0, HELDOUT_START)), name)
            for _ in range(cfg.views_per_scene):
                pose = random_pose(rng)
                frames.append(scene.render(pose, cfg.resolution))
                labels = view_labels(scene, pose)
                for column, value in zip((style, pitch, fov, kinds, known), labels):
                    column.append(value)
    return {"frames": np.stack(frames), "style": np.array(style), "pitch": np.array(pitch), "fov": np.array(fov),
            "kinds": np.stack(kinds), "known": np.array(known)}


def jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random channel order, per-channel gain (0.6-1.4) and offset (+-0.3) of float frames (N, 3, H, W) in [-1, 1]."""
    n = len(x)
    order = torch.argsort(torch.rand(n, 3, generator=gen), dim=1)
    x = torch.gather(x, 1, order[:, :, None, None].expand_as(x))
    gain = 0.6 + 0.8 * torch.rand(n, 3, 1, 1, generator=gen)
    offset = 0.6 * torch.rand(n, 3, 1, 1, generator=gen) - 0.3
    return x * gain + offset


def _loss(net: FeatureNet, data: dict[str, torch.Tensor], idx: torch.Tensor,
          gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    x = to_input(data["frames"][idx].numpy())
    logits = net(x if gen is None else jitter(x, gen))
    a, b, c = len(STYLE_NAMES), len(STYLE_NAMES) + PITCH_BINS, len(STYLE_NAMES) + PITCH_BINS + FOV_BINS
    known = data["known"][idx].float()[:, None]
    kinds = (F.binary_cross_entropy_with_logits(logits[:, c:], data["kinds"][idx], reduction="none") * known).sum()
    loss = (F.cross_entropy(logits[:, :a], data["style"][idx]) + F.cross_entropy(logits[:, a:b], data["pitch"][idx])
            + F.cross_entropy(logits[:, b:c], data["fov"][idx]) + kinds / known.sum().clamp(min=1) / len(OBJECT_KINDS))
    accuracy = (logits[:, :a].argmax(1) == data["style"][idx]).float().mean()
    return loss, accuracy


def train_feature_net(cfg: FeatureNetConfig = FeatureNetConfig(), log_every: int = 40) -> tuple[FeatureNet, list[dict]]:
    """Train the judge from scratch; same config and thread count -> the same weights."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    data = {k: torch.from_numpy(v) for k, v in training_views(cfg).items()}
    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    log = []
    for step in tqdm(range(cfg.steps), desc="feature net", unit="batch"):
        idx = torch.randint(len(data["frames"]), (cfg.batch,), generator=gen)
        loss, accuracy = _loss(net, data, idx, gen if cfg.colour_jitter else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            log.append({"step": step + 1, "loss": loss.item(), "style_accuracy": float(accuracy)})
    return net.eval(), log


def save_feature_net(net: FeatureNet, cfg: FeatureNetConfig, log: list[dict], path: str | Path = FEATURES_PATH) -> Path:
    return save_checkpoint(path, net, KIND, cfg, extra={"log": log, "command": "python -m magworld.bench.features"})


def load_feature_net(path: str | Path = FEATURES_PATH) -> FeatureNet:
    """The shipped judge (or one saved by :func:`save_feature_net`), in eval mode."""
    net = FeatureNet()
    load_into(net, path, KIND)
    return net.eval().requires_grad_(False)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigh; tiny negative eigenvalues clipped)."""
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to feature sets (N, D) and (M, D), with ``Tr (S_x S_y)^1/2`` taken on the
    symmetric form ``Tr (S_x^1/2 S_y S_x^1/2)^1/2`` (only symmetric eigendecompositions)."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"Fréchet distance needs at least 2 samples per set, got {len(x)} and {len(y)}")
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    return frechet_from_moments(mu_x, s_x, mu_y, s_y)


class Moments(NamedTuple):
    mean: np.ndarray  # (D,)
    cov: np.ndarray  # (D, D)
    count: int


def cell_moments(net: FeatureNet, frames: np.ndarray, masks: np.ndarray | None = None, batch: int = 256) -> Moments:
    """Mean and covariance of :meth:`FeatureNet.cells` over all frames, accumulated batch by batch (~10^6 cells)."""
    total, outer, count = np.zeros(net.dim), np.zeros((net.dim, net.dim)), 0
    for i in range(0, len(frames), batch):
        f = net.cells(frames[i:i + batch], None if masks is None else masks[i:i + batch])
        total += f.sum(0)
        outer += f.T @ f
        count += len(f)
    if count < 2:
        raise ValueError(f"Fréchet distance needs at least 2 cells, got {count}")
    mean = total / count
    return Moments(mean, (outer - count * np.outer(mean, mean)) / (count - 1), count)


def frechet_from_moments(mu_x: np.ndarray, s_x: np.ndarray, mu_y: np.ndarray, s_y: np.ndarray) -> float:
    root = sqrtm_psd(s_x)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ s_y @ root), 0.0, None)).sum()
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(s_x) + np.trace(s_y) - 2.0 * cross)


def main(path: str | Path = FEATURES_PATH) -> None:
    """Retrain the shipped judge: ``OMP_NUM_THREADS=1 python -m magworld.bench.features [path]``."""
    import sys

    torch.set_num_threads(1)
    cfg = FeatureNetConfig()
    net, log = train_feature_net(cfg)
    path = save_feature_net(net, cfg, log, sys.argv[1] if len(sys.argv) > 1 else path)
    print(json.dumps(log[-1]), f"wrote {path} (sha256 {file_sha256(path)[:12]})", asdict(cfg))


if __name__ == "__main__":
    main()


__all__ = ["FEATURES_PATH", "FeatureNet", "FeatureNetConfig", "Moments", "cell_moments", "file_sha256", "frechet_distance", "frechet_from_moments",
           "load_feature_net", "save_feature_net", "sqrtm_psd", "train_feature_net", "view_labels"]
