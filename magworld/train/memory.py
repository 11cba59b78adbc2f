"""Stage ``memory`` (MAG stage 1): train the memory model on latent clips of training-seed worlds.

Each step renders ``batch_size`` camera clips of ``blocks`` blocks, encodes them with the frozen
autoencoder, and minimises :meth:`MemoryModel.loss` (every block reconstructed from the compressed
history plus its own kept frame). Evaluation reconstructs held-out clips block by block through the
``mag`` cache, exactly as at run time, and reports pixel PSNR/SSIM per style.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from magworld.model.autoencoder import Autoencoder
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pretrained import load_autoencoder, load_bundled
from magworld.model.text import TextConfig, make_text_encoder

from .common import Run, RunConfig, lr_at, optimizer_step, seed_everything, set_lr
from .data import Clip, WorldDataConfig, WorldStream, heldout_clips
from .metrics import psnr, ssim


@dataclass
class MemoryStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/memory"))
    model: MemoryConfig = field(default_factory=MemoryConfig)
    data: WorldDataConfig = field(default_factory=WorldDataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: str = "bundled"  # or a path to an autoencoder .safetensors
    blocks: int = 3  # blocks per training clip
    text_drop: float = 0.1  # probability of the empty prompt
    eval_clips: int = 32


def frozen_autoencoder(spec: str) -> Autoencoder:
    model = load_bundled("autoencoder") if spec == "bundled" else load_autoencoder(spec)
    return model.requires_grad_(False).eval()


@torch.no_grad()
def encode_clip(ae: Autoencoder, frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, 3, H, W) -> latents (B, T, C, h, w)."""
    return ae.encode(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])


@torch.no_grad()
def decode_clip(ae: Autoencoder, latents: torch.Tensor) -> torch.Tensor:
    """latents (B, T, C, h, w) -> uint8 (B, T, 3, H, W)."""
    return ae.decode(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])


@torch.no_grad()
def evaluate(model: MemoryModel, ae: Autoencoder, clip: Clip, text: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """Reconstruct held-out clips through the mag cache; PSNR/SSIM per style, the autoencoder ceiling, cache bytes."""
    was_training = model.training
    model.eval()
    latents = encode_clip(ae, clip.frames)
    recon, cache = model.reconstruct(latents, clip.poses, text, generator=torch.Generator().manual_seed(seed))
    model.train(was_training)
    frames, blocks = clip.frames.flatten(0, 1), latents.shape[1] / model.cfg.transformer.block_frames
    out, ceiling = decode_clip(ae, recon).flatten(0, 1), decode_clip(ae, latents).flatten(0, 1)  # (B*T, 3, H, W)
    p, s, p_ae = psnr(out, frames), ssim(out, frames), psnr(ceiling, frames)
    styles = np.repeat(np.array(clip.styles), latents.shape[1])
    result = {"psnr": float(p.mean()), "ssim": float(s.mean()), "psnr_autoencoder": float(p_ae.mean()),
              "cache_bytes_per_block": cache.bytes() / len(clip.styles) / blocks}
    for style in sorted(set(clip.styles)):
        result[f"psnr_{style}"] = float(p[torch.from_numpy(styles == style)].mean())
    return result


def prompts_with_drop(captions: list[str], drop: float, rng: np.random.Generator) -> list[str]:
    return ["" if rng.random() < drop else c for c in captions]


def train(cfg: MemoryStageConfig) -> dict[str, float]:
    torch.set_num_threads(cfg.run.threads)
    seed_everything(cfg.run.seed)
    ae, text_encoder = frozen_autoencoder(cfg.autoencoder), make_text_encoder(cfg.text)
    model = MemoryModel(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
    run = Run(cfg.run, "memory", asdict(cfg))
    start = run.resume(model, cfg.model, opt)
    frames = cfg.blocks * cfg.model.transformer.block_frames
    stream, rng = WorldStream(cfg.data, seed=cfg.run.seed + start), np.random.default_rng([cfg.run.seed, start])
    generator = torch.Generator().manual_seed(cfg.run.seed * 100_003 + start)
    heldout = heldout_clips(cfg.data, cfg.eval_clips, frames)
    heldout_text = text_encoder.encode(heldout.captions)
    bar = tqdm(range(start, cfg.run.steps), initial=start, total=cfg.run.steps, desc=f"memory x{cfg.model.compression:g}")
    metrics: dict[str, float] = {}
    done = start
    for step in bar:
        set_lr(opt, lr_at(step, cfg.run))
        clip = stream.clips(cfg.run.batch_size, frames)
        latents = encode_clip(ae, clip.frames)  # (B, T, C, h, w)
        text = text_encoder.encode(prompts_with_drop(clip.captions, cfg.text_drop, rng))  # (B, 1, 384)
        loss = model.loss(latents, clip.poses, text, generator)
        optimizer_step(opt, loss, model)
        done = step + 1
        if done % cfg.run.log_every == 0:
            elapsed = max(1e-6, bar.format_dict["elapsed"])
            run.log(done, loss=loss.item(), lr=opt.param_groups[0]["lr"],
                    clips_per_s=(done - start) * cfg.run.batch_size / elapsed)
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if done % cfg.run.eval_every == 0 or done == cfg.run.steps:
            metrics = evaluate(model, ae, heldout, heldout_text)
            run.log(done, **metrics)
            bar.write(f"step {done}: held-out PSNR {metrics['psnr']:.2f} dB (autoencoder {metrics['psnr_autoencoder']:.2f})")
        if done % cfg.run.save_every == 0 or done == cfg.run.steps or run.out_of_time():
            run.save(model, cfg.model, opt, done)
        if run.out_of_time():
            bar.write(f"stopping at step {done}: max_minutes={cfg.run.max_minutes} reached (resume to continue)")
            break
    if not metrics or done != cfg.run.steps:
        metrics = evaluate(model, ae, heldout, heldout_text)
        run.log(done, **metrics)
    path = run.export(model, cfg.model, "memory", extra={"step": done, **metrics})
    print(f"held-out reconstruction: {metrics}\nwrote {path}")
    return metrics
