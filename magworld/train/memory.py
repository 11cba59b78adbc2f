"""Stage ``memory`` (MAG stage 1): train the memory model on latent clips of training-seed worlds.

Each step renders ``batch_size`` camera clips of ``blocks`` blocks, encodes them with the frozen
autoencoder, and minimises :meth:`MemoryModel.loss` (every block reconstructed from the compressed
history plus its own kept frame). Evaluation reconstructs held-out clips block by block through the
``mag`` cache, exactly as at run time, and reports pixel PSNR/SSIM per style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Iterator, NamedTuple

import numpy as np
import torch

from magworld.model.autoencoder import Autoencoder
from magworld.model.masks import kept_frames
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.text import TextConfig, make_text_encoder

from .common import decode_clip, encode_clip, frozen_autoencoder
from .loop import Placement, RunConfig, Stage, train_stage
from .data import Clip, WorldDataConfig, WorldStream, heldout_clips
from .metrics import psnr, ssim


@dataclass
class MemoryStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(  # the bundled memory model's run
        out_dir="runs/memory", steps=3200, lr=7e-4, warmup_steps=100, eval_every=400, save_every=100, max_minutes=60))
    model: MemoryConfig = field(default_factory=MemoryConfig)
    data: WorldDataConfig = field(default_factory=WorldDataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: str = "bundled"  # or a path to an autoencoder .safetensors
    blocks: int = 3  # blocks per training clip
    text_drop: float = 0.1  # probability of the empty prompt
    eval_clips: int = 16


@torch.no_grad()
def evaluate(model: MemoryModel, ae: Autoencoder, clip: Clip, text: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Reconstruct held-out clips through the mag cache on the model's device: PSNR/SSIM per style, the autoencoder
    ceiling, cache bytes."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    truth = clip.frames.to(device)
    latents = encode_clip(ae, truth)
    recon, cache = model.reconstruct(latents, clip.poses.to(device), text.to(device),
                                     generator=torch.Generator(device).manual_seed(seed))
    model.train(was_training)
    frames, blocks = truth.flatten(0, 1), latents.shape[1] / model.cfg.transformer.block_frames
    out, ceiling = decode_clip(ae, recon).flatten(0, 1), decode_clip(ae, latents).flatten(0, 1)  # (B*T, 3, H, W)
    p, s, p_ae = psnr(out, frames), ssim(out, frames), psnr(ceiling, frames)
    styles = np.repeat(np.array(clip.styles), latents.shape[1])
    result = {"psnr": float(p.mean()), "ssim": float(s.mean()), "psnr_autoencoder": float(p_ae.mean()),
              "cache_bytes_per_block": cache.bytes() / len(clip.styles) / blocks}
    for style in sorted(set(clip.styles)):
        result[f"psnr_{style}"] = float(p[torch.from_numpy(styles == style)].mean())
    return result | by_place_in_block(p.view(latents.shape[:2]).cpu(), clip.poses, model.cfg)


def by_place_in_block(frame_psnr: torch.Tensor, poses: torch.Tensor, cfg: MemoryConfig) -> dict[str, float]:
    """Mean PSNR (B, T) of the kept frames and of the others, split into those whose camera did not move from their
    block's last frame (a copy of what the kept frame shows) and those it moved from (content moved to a new pose).
    A key is left out when no frame falls in it."""
    bf = cfg.transformer.block_frames
    kept = kept_frames(torch.arange(frame_psnr.shape[1]), bf, cfg.kept).expand_as(frame_psnr)  # (B, T)
    last = poses.unflatten(1, (-1, bf))[:, :, -1:].expand(-1, -1, bf, -1).flatten(1, 2)  # (B, T, 3)
    still = (poses - last).abs().amax(-1) < 1e-4  # (B, T)
    groups = {"psnr_kept": kept, "psnr_others": ~kept, "psnr_others_still": ~kept & still,
              "psnr_others_moved": ~kept & ~still}
    return {name: float(frame_psnr[m].mean()) for name, m in groups.items() if bool(m.any())}


class MemoryBatch(NamedTuple):
    latents: torch.Tensor  # (B, T, C, h, w)
    poses: torch.Tensor  # (B, T, 3)
    text: torch.Tensor  # (B, 1, text_dim)
    noise: torch.Generator  # draws this step's flow times and noise (on the run's device)


def build_stage(cfg: MemoryStageConfig, placement: Placement) -> Stage:
    device = placement.device
    ae, text_encoder = frozen_autoencoder(cfg.autoencoder, device), make_text_encoder(cfg.text)
    model = MemoryModel(cfg.model).to(device)
    frames = cfg.blocks * cfg.model.transformer.block_frames
    heldout = heldout_clips(cfg.data, cfg.eval_clips, frames)
    heldout_text = text_encoder.encode(heldout.captions).to(device)

    def data(start: int) -> Iterator[MemoryBatch]:
        stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own clips
        rng, noise = placement.streams(cfg.run.seed, start)
        for _ in count():
            clip = stream.clips(placement.local_batch(cfg.run.batch_size), frames)
            latents = encode_clip(ae, clip.frames.to(device))  # (B, T, C, h, w)
            prompts = ["" if rng.random() < cfg.text_drop else c for c in clip.captions]  # empty with probability text_drop
            text = text_encoder.encode(prompts).to(device)  # (B, 1, D)
            yield MemoryBatch(latents, clip.poses.to(device), text, noise)

    def step(net: MemoryModel, batch: MemoryBatch) -> dict[str, torch.Tensor]:
        return {"loss": net.loss(batch.latents, batch.poses, batch.text, batch.noise)}

    return Stage(kind="memory", model=model, model_config=cfg.model,
                 optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay),
                 data=data, step=step, evaluate=lambda: evaluate(model, ae, heldout, heldout_text),
                 unit="clips", label=f"memory x{cfg.model.compression:g}")


def train(cfg: MemoryStageConfig) -> dict[str, float]:
    return train_stage(build_stage, cfg)
