"""The judge of :mod:`magworld.bench.invention`: a small fully convolutional CNN trained on simulator views of
training scenes (style, pitch and fov bins, object kinds in view; colour jitter so it reads structure, not palette)
and on degraded copies of them (grain, noise, blur, shuffled patches, colour washes: its features must tell a drawn
frame from noise or texture), its local cell descriptors (one 160-number descriptor per 4x4 cell wholly inside a
mask: mean and std of layers 1 and 2, layer 4, on the frame minus its mean colour) and the Fréchet distance between
two descriptor sets. The weights ship (``magworld/assets/bench/invent-features.safetensors``);
``python -m magworld.bench.features`` retrains them.
Design and what did not work: ``docs/notes/invention.md``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from magworld.model.checkpoint import load_into, save_checkpoint
from magworld.model.pipeline import sha256
from magworld.train.data import HELDOUT_START, random_pose
from magworld.world import STYLE_NAMES, Pose, Scene, make_scene
from magworld.world.camera import FOV_MAX, FOV_MIN, PITCH_LIMIT, wrap_degrees

FEATURES_PATH = Path(__file__).resolve().parent.parent / "assets" / "bench" / "invent-features.safetensors"
KIND = "invent_features"
OBJECT_KINDS: tuple[str, ...] = ("pine tree", "round tree", "cabin", "rock", "tower",  # outdoor
                                 "question block", "brick platform", "pipe", "coin", "pillar", "flag",  # game
                                 "car", "lamp")  # city
PITCH_BINS = 6
FOV_BINS = 6
CHANNELS = (16, 32, 48, 64)
STRIDES = (1, 2, 1, 2)
CELL = 4  # px: the stride of layer 4, one local descriptor per cell
DEGRADATIONS: tuple[str, ...] = ("clean", "grain", "pixel noise", "block noise", "blur", "shuffle", "wash")


@dataclass
class FeatureNetConfig:
    scenes_per_style: int = 16  # training scenes (seeds < HELDOUT_START)
    views_per_scene: int = 48
    steps: int = 600
    batch: int = 64
    lr: float = 6e-3
    seed: int = 0
    resolution: int = 64
    colour_jitter: bool = True  # random channel order, gain and offset per training view: tell styles by structure
    degraded: float = 0.5  # fraction of each batch degraded (a random kind of DEGRADATIONS)


class FeatureNet(nn.Module):
    """Four convolutions and one linear head on the cell descriptors: every class (style, pitch, fov, object kinds,
    degradation) is read from the very numbers the Fréchet distance compares."""

    def __init__(self) -> None:
        super().__init__()
        ins = (3, *CHANNELS[:-1])
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, 1) for i, o, s in zip(ins, CHANNELS, STRIDES))
        for conv in self.convs:  # activations keep their scale through the stack: the degradation head learns in minutes
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        self.head = nn.Linear(self.dim, len(STYLE_NAMES) + PITCH_BINS + FOV_BINS + len(OBJECT_KINDS) + len(DEGRADATIONS))

    dim = 2 * CHANNELS[0] + 2 * CHANNELS[1] + CHANNELS[3]  # 160 numbers per cell

    def descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim, H/4, W/4) cell descriptors of float frames (N, 3, H, W) in [-1, 1], taken minus their mean colour:
        mean and std over the cell of layers 1 and 2, and layer 4."""
        maps = []
        x = x - x.mean(dim=(2, 3), keepdim=True)
        for conv in self.convs:
            x = F.relu(conv(x))
            maps.append(x)
        return torch.cat([F.avg_pool2d(maps[0], CELL), _std_pool(maps[0], CELL), F.avg_pool2d(maps[1], CELL // 2),
                          _std_pool(maps[1], CELL // 2), maps[3]], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.descriptors(x).mean(dim=(2, 3)))  # (N, classes) logits

    @torch.no_grad()
    def cells(self, frames: np.ndarray, masks: np.ndarray | None = None, batch: int = 256) -> np.ndarray:
        """float64 (K, dim) local descriptors of uint8 frames (N, H, W, 3): one per 4x4 cell wholly inside the bool
        ``masks`` (N, H, W) (None: every cell)."""
        out = []
        for i in range(0, len(frames), batch):
            f = self.descriptors(to_input(frames[i:i + batch]))
            keep = torch.ones(len(f), *f.shape[2:], dtype=torch.bool)
            if masks is not None:  # a cell counts when its whole footprint is in the mask
                keep = -F.max_pool2d(-torch.from_numpy(masks[i:i + batch]).float()[:, None], CELL)[:, 0] > 0.5
            out.append(rearrange(f, "n d h w -> n h w d")[keep].double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))


def _std_pool(x: torch.Tensor, k: int) -> torch.Tensor:
    """Standard deviation over k x k windows (stride k)."""
    mean = F.avg_pool2d(x, k)
    return (F.avg_pool2d(x * x, k) - mean * mean).clamp(min=1e-8).sqrt()  # finite gradient at 0


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
        if abs(float(wrap_degrees(np.float64(az) - pose.yaw))) <= pose.fov / 2:
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


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _pick(gen: torch.Generator, *options):
    return options[int(torch.randint(len(options), (), generator=gen))]


def gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Float frames (N, 3, H, W) blurred by a separable Gaussian (radius 3 sigma, edges replicated)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    kernel = torch.exp(-torch.arange(-radius, radius + 1.0) ** 2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).repeat(3, 1, 1, 1)  # (3, 1, 1, k): one per channel
    x = F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), kernel, groups=3)
    return F.conv2d(x, rearrange(kernel, "c i h w -> c i w h"), groups=3)


def _shuffle(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Patches of 1-8 px in random order, then blurred: the frame's colours without its shapes."""
    p, h = _pick(gen, 1, 2, 4, 8), x.shape[2]
    patches = rearrange(x, "n c (h p) (w q) -> (n h w) c p q", p=p, q=p)
    patches = patches[torch.randperm(len(patches), generator=gen)]
    return gaussian(rearrange(patches, "(n h w) c p q -> n c (h p) (w q)", n=1, h=h // p), _uniform(gen, 0.3, 2.0))


def _smooth_noise(shape: torch.Size, size: int, mode: str, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise drawn at ``size`` x ``size`` and upsampled to ``shape`` (N, 3, H, W)."""
    noise = torch.randn(shape[0], 3, size, size, generator=gen)
    return F.interpolate(noise, size=tuple(shape[2:]), mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


DEGRADE = {  # float frames (1, 3, H, W) in about [-1, 1] -> the same degraded; in DEGRADATIONS order, after "clean"
    "grain": lambda x, g: x + _uniform(g, 3, 24) / 127.5 * torch.randn(x.shape, generator=g),
    "pixel noise": lambda x, g: torch.lerp(x, 2 * torch.rand(x.shape, generator=g) - 1, _uniform(g, 0.2, 1.0)),
    "block noise": lambda x, g: x + _uniform(g, 0.05, 0.5) * _smooth_noise(
        x.shape, x.shape[-1] // _pick(g, 2, 4, 8), _pick(g, "nearest", "bilinear"), g),
    "blur": lambda x, g: gaussian(x, _uniform(g, 0.8, 2.5)),
    "shuffle": _shuffle,
    "wash": lambda x, g: torch.lerp(x, _smooth_noise(x.shape, _pick(g, 2, 3, 4), "bilinear", g).clamp(-1, 1),
                                    _uniform(g, 0.3, 0.8)),
}


def degrade(x: torch.Tensor, count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``count`` of float frames (N, 3, H, W) each degraded by a random kind, and the labels (N,): index in
    DEGRADATIONS, 0 = clean."""
    labels = torch.zeros(len(x), dtype=torch.long)
    labels[len(x) - count:] = torch.randint(1, len(DEGRADATIONS), (count,), generator=gen)
    out = [x[i:i + 1] if k == 0 else DEGRADE[DEGRADATIONS[k]](x[i:i + 1], gen) for i, k in enumerate(labels.tolist())]
    return torch.cat(out), labels


def _loss(net: FeatureNet, data: dict[str, torch.Tensor], idx: torch.Tensor, gen: torch.Generator,
          cfg: FeatureNetConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Style, pitch, fov and object kinds on the clean frames; the degradation of every frame."""
    x = to_input(data["frames"][idx].numpy())
    count = round(cfg.degraded * len(x))
    x, degradation = degrade(jitter(x, gen) if cfg.colour_jitter else x, count, gen)
    every = net(x)
    logits, clean = every[:len(x) - count], idx[:len(x) - count]
    a, b, c, d = (len(STYLE_NAMES) + n for n in (0, PITCH_BINS, PITCH_BINS + FOV_BINS, PITCH_BINS + FOV_BINS + len(OBJECT_KINDS)))
    known = data["known"][clean].float()[:, None]
    kinds = (F.binary_cross_entropy_with_logits(logits[:, c:d], data["kinds"][clean], reduction="none") * known).sum()
    loss = (F.cross_entropy(logits[:, :a], data["style"][clean]) + F.cross_entropy(logits[:, a:b], data["pitch"][clean])
            + F.cross_entropy(logits[:, b:c], data["fov"][clean]) + kinds / known.sum().clamp(min=1) / len(OBJECT_KINDS)
            + F.cross_entropy(every[:, d:], degradation))
    return loss, {"style_accuracy": float((logits[:, :a].argmax(1) == data["style"][clean]).float().mean()),
                  "degradation_accuracy": float((every[:, d:].argmax(1) == degradation).float().mean())}


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
        loss, accuracy = _loss(net, data, idx, gen, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            log.append({"step": step + 1, "loss": loss.item(), **accuracy})
    return net.eval(), log


def save_feature_net(net: FeatureNet, cfg: FeatureNetConfig, log: list[dict], path: str | Path = FEATURES_PATH) -> Path:
    return save_checkpoint(path, net, KIND, cfg, extra={"log": log, "command": "python -m magworld.bench.features"})


def load_feature_net(path: str | Path = FEATURES_PATH) -> FeatureNet:
    """The shipped judge (or one saved by :func:`save_feature_net`), in eval mode."""
    net = FeatureNet()
    load_into(net, path, KIND)
    return net.eval().requires_grad_(False)


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
    print(json.dumps(log[-1]), f"wrote {path} (sha256 {sha256(path)[:12]})", asdict(cfg))


if __name__ == "__main__":
    main()

