"""Stage ``autoencoder``: train the frame autoencoder on rendered views of training-seed worlds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch.nn import functional as F
from tqdm import tqdm

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig

from .common import Run, RunConfig, lr_at, optimizer_step, seed_everything, set_lr
from .data import WorldDataConfig, WorldStream, heldout_frames
from .metrics import psnr


@dataclass
class AutoencoderStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/autoencoder"))
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


def train(cfg: AutoencoderStageConfig) -> dict[str, float]:
    torch.set_num_threads(cfg.run.threads)
    seed_everything(cfg.run.seed)
    model = Autoencoder(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay)
    run = Run(cfg.run, "autoencoder", asdict(cfg))
    start = run.resume(model, cfg.model, opt)
    stream = WorldStream(cfg.data, seed=cfg.run.seed + start)
    heldout = heldout_frames(cfg.data, cfg.eval_per_style)
    bar = tqdm(range(start, cfg.run.steps), initial=start, total=cfg.run.steps, desc="autoencoder")
    metrics: dict[str, float] = {}
    for step in bar:
        set_lr(opt, lr_at(step, cfg.run))
        frames = stream.frames(cfg.run.batch_size)  # (B, 3, H, W) uint8
        target = model.to_unit(frames)
        recon = model.decode_raw(model.encode_raw(frames))
        loss = F.mse_loss(recon, target) + cfg.l1_weight * F.l1_loss(recon, target)
        optimizer_step(opt, loss, model, max_grad_norm=None)
        done = step + 1
        if done % cfg.run.log_every == 0:
            run.log(done, loss=loss.item(), lr=opt.param_groups[0]["lr"],
                    samples_per_s=(done - start) * cfg.run.batch_size / max(1e-6, bar.format_dict["elapsed"]))
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if done % cfg.run.eval_every == 0 or done == cfg.run.steps:
            metrics = evaluate(model, heldout)
            run.log(done, **metrics)
            bar.write(f"step {done}: held-out PSNR " + ", ".join(f"{k[5:]} {v:.2f}" for k, v in metrics.items()))
        if done % cfg.run.save_every == 0 or done == cfg.run.steps or run.out_of_time():
            run.save(model, cfg.model, opt, done)
        if run.out_of_time():
            bar.write(f"stopping at step {done}: max_minutes={cfg.run.max_minutes} reached (resume to continue)")
            break
    model.fit_latent_stats(stream.frames(cfg.stats_frames))
    metrics = evaluate(model, heldout)
    path = run.export(model, cfg.model, "autoencoder", extra={"step": done, **metrics})
    print(f"held-out PSNR per style: {metrics}\nwrote {path}")
    return metrics
