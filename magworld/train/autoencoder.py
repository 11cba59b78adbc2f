"""Stage ``autoencoder``: train the frame autoencoder on rendered views of training-seed worlds."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Iterator

import torch
from torch.nn import functional as F

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig

from .loop import Placement, RunConfig, Stage, train_stage
from .data import WorldDataConfig, WorldStream, heldout_frames
from .metrics import psnr


@dataclass
class AutoencoderStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(  # the bundled autoencoder's run
        out_dir="runs/autoencoder", steps=3500, batch_size=32, lr=1e-3, warmup_steps=200, eval_every=500, save_every=250,
        max_minutes=40))
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    data: WorldDataConfig = field(default_factory=WorldDataConfig)
    l1_weight: float = 0.1
    eval_per_style: int = 64
    stats_frames: int = 512


@torch.no_grad()
def evaluate(model: Autoencoder, sets: dict[str, torch.Tensor]) -> dict[str, float]:
    """Held-out reconstruction PSNR (dB) per style through the uint8 round trip, plus the mean."""
    model.eval()
    out = {style: float(psnr(model.decode(model.encode(x)), x).mean()) for style, x in sets.items()}
    model.train()
    return {**{f"psnr_{k}": v for k, v in out.items()}, "psnr_mean": sum(out.values()) / len(out)}


def reconstruction_loss(model: Autoencoder, frames: torch.Tensor, l1_weight: float) -> dict[str, torch.Tensor]:
    """MSE + ``l1_weight`` * L1 of reconstructing uint8 frames (B, 3, H, W) in [-1, 1] units."""
    target = model.to_unit(frames)
    recon = model.decode_raw(model.encode_raw(frames))
    return {"loss": F.mse_loss(recon, target) + l1_weight * F.l1_loss(recon, target)}


def build_stage(cfg: AutoencoderStageConfig, placement: Placement) -> Stage:
    device = placement.device
    model = Autoencoder(cfg.model).to(device)
    heldout = {style: x.to(device) for style, x in heldout_frames(cfg.data, cfg.eval_per_style).items()}
    stream: WorldStream | None = None

    def data(start: int) -> Iterator[torch.Tensor]:
        nonlocal stream
        stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own frames
        batch = placement.local_batch(cfg.run.batch_size)
        return (stream.frames(batch).to(device) for _ in count())  # (B, 3, H, W) uint8

    def finalize() -> None:  # standardise the latents with statistics of training frames
        model.fit_latent_stats(stream.frames(cfg.stats_frames).to(device))

    return Stage(kind="autoencoder", model=model, model_config=cfg.model,
                 optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay),
                 data=data, step=lambda m, frames: reconstruction_loss(m, frames, cfg.l1_weight),
                 evaluate=lambda: evaluate(model, heldout), max_grad_norm=None, finalize=finalize)


def train(cfg: AutoencoderStageConfig) -> dict[str, float]:
    return train_stage(build_stage, cfg)
