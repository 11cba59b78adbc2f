"""``magworld bench compression``: memory-model reconstruction quality vs compression ratio.

**Compression ratio r** = frames per block / kept frames per block. We keep one frame per block and
set the block length to r frames: r = 1 keeps every frame (no compression), r = 3 is the paper's
setting (one kept frame per 3-frame block), r = 4 and 5 use 4- and 5-frame blocks. For each ratio a
tiny memory model is trained with the same step budget on clips of about ``frames_per_clip`` frames
(``ceil(frames_per_clip / r)`` blocks, at least 2) and evaluated on held-out clips through the
``mag`` cache exactly as at run time: pixel PSNR/SSIM of all frames, the autoencoder ceiling, and
the cache bytes per block and per frame. ``bench.quick=true`` trains a few steps only (a smoke run;
its numbers say little about the method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from magworld.model.memory_model import MemoryConfig
from magworld.model.checkpoint import read_meta
from magworld.model.pretrained import bundled_path, load_bundled
from magworld.model.text import make_text_encoder
from magworld.train.data import heldout_clips
from magworld.train.common import frozen_autoencoder
from magworld.train.loop import RunConfig
from magworld.train.memory import MemoryStageConfig, evaluate, train

from .common import format_table, refuse_overwrite, write_json


@dataclass
class CompressionBenchConfig:
    ratios: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    frames_per_clip: int = 9
    steps: int = 200
    quick: bool = False
    quick_steps: int = 30
    eval_clips: int = 16
    bundled: bool = True  # also evaluate the bundled ratio-3 memory model
    out_dir: str = "runs/bench/compression"  # git-ignored; the committed results: out_dir=bench-results/compression
    overwrite: bool = False  # replace an earlier results file in out_dir
    train: MemoryStageConfig = field(default_factory=lambda: MemoryStageConfig(  # each ratio's memory model
        run=RunConfig(out_dir="runs/bench-compression", steps=800, lr=1e-3, eval_every=200, save_every=100,
                      max_minutes=40)))


def blocks_for(ratio: int, frames_per_clip: int) -> int:
    return max(2, math.ceil(frames_per_clip / ratio))


def ratio_config(cfg: CompressionBenchConfig, ratio: int) -> MemoryStageConfig:
    """The stage-1 training config for one compression ratio (block of ``ratio`` frames, 1 kept)."""
    base = cfg.train
    steps = cfg.quick_steps if cfg.quick else cfg.steps
    model = MemoryConfig(transformer=replace(base.model.transformer, block_frames=ratio), kept=1, flow=base.model.flow)
    run = replace(base.run, out_dir=f"{base.run.out_dir}/ratio{ratio}", steps=steps, eval_every=steps,
                  save_every=steps, warmup_steps=min(base.run.warmup_steps, steps // 4 + 1), resume=False)
    return replace(base, model=model, run=run, blocks=blocks_for(ratio, cfg.frames_per_clip), eval_clips=cfg.eval_clips)


def _row(label: str, ratio: int, steps: int | str, m: dict) -> list:
    return [label, ratio, steps, m["psnr"], m["ssim"], m["psnr_autoencoder"], m["cache_bytes_per_block"] / 1024,
            m["cache_bytes_per_block"] / 1024 / ratio]


def run(cfg: CompressionBenchConfig) -> dict:
    path = f"{cfg.out_dir}/results{'-quick' if cfg.quick else ''}.json"
    refuse_overwrite([path], cfg.overwrite)
    torch.set_num_threads(cfg.train.run.threads)
    results, rows = [], []
    for ratio in cfg.ratios:
        stage = ratio_config(cfg, ratio)
        metrics = train(stage)
        results.append({"ratio": ratio, "block_frames": ratio, "kept": 1, "blocks": stage.blocks,
                        "steps": stage.run.steps, **metrics})
        rows.append(_row(f"trained x{ratio}", ratio, stage.run.steps, metrics))
    if cfg.bundled:
        frames = blocks_for(3, cfg.frames_per_clip) * 3
        clip = heldout_clips(cfg.train.data, cfg.eval_clips, frames)
        text = make_text_encoder(cfg.train.text).encode(clip.captions)
        model, steps = load_bundled("memory"), read_meta(bundled_path("memory"))["extra"].get("step", "?")
        metrics = evaluate(model, frozen_autoencoder(cfg.train.autoencoder), clip, text)
        results.append({"ratio": model.cfg.compression, "bundled": True, "steps": steps, **metrics})
        rows.append(_row("bundled tiny", int(model.cfg.compression), steps, metrics))
    header = ["model", "ratio", "train steps", "PSNR dB", "SSIM", "AE ceiling PSNR", "cache KiB/block/world",
              "cache KiB/frame/world"]
    print(format_table(header, rows))
    payload = {"benchmark": "compression", "definition": __doc__, "quick": cfg.quick, "results": results}
    print(f"wrote {write_json(path, payload)}")
    return {"results": results}
