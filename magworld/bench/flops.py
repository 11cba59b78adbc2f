"""A FLOP model of one env step (one block of latent frames) and the frames/s it implies.

Counted: matmul multiply-adds (2 FLOPs each) of ``steps`` sampler forwards and ``clean_passes`` memory-model forwards
over the block's query tokens reading ``history_frames`` cached frames, plus the decoder. Per layer (L queries,
K = L + history keys, S text tokens, width D, MLP width F): projections ``8 L D^2``, attention ``4 L K D``, text
cross-attention ``4 L D^2 + 4 (S+1) D^2 + 4 L (S+1) D``, MLP ``4 L D F``; embeddings and head once per forward
(``other``). Checked against ``torch.utils.flop_counter`` (tests/bench/test_flops.py). ``python -m
magworld.bench.flops [TFLOP/s]`` prints the table of ``docs/notes/scale.md``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import torch

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.config import TransformerConfig, transformer_preset

from .common import format_table

H100_SUSTAINED_TFLOPS = 400.0  # assumed sustained bf16 rate: ~40% of the H100 SXM's 989 TFLOP/s dense peak
PARTS = ("attn_proj", "attention", "cross", "mlp", "other")


@dataclass(frozen=True)
class Workload:
    """What one env step computes: the block, what it reads and how many passes run over it."""

    height: int  # pixels
    width: int
    history_frames: int = 21  # compressed frames in the cache the block reads
    text_tokens: int = 1  # prompt tokens (MiniLM: one sentence embedding; Wan's umT5: 512)
    steps: int = 4  # sampler forwards of the generator
    clean_passes: int = 1  # memory-model forwards writing the finished block into the cache
    spatial_down: int = 8  # pixels per latent pixel (each side)
    video_per_latent: int = 1  # video frames per latent frame (temporal compression of the decoder)

    def latent_hw(self) -> tuple[int, int]:
        if self.height % self.spatial_down or self.width % self.spatial_down:
            raise ValueError(f"{self.height}x{self.width} is not a multiple of the {self.spatial_down}x autoencoder")
        return self.height // self.spatial_down, self.width // self.spatial_down

    def tokens_per_frame(self, patch_size: int) -> int:
        h, w = self.latent_hw()
        if h % patch_size or w % patch_size:
            raise ValueError(f"latent {h}x{w} is not a multiple of patch size {patch_size}")
        return (h // patch_size) * (w // patch_size)


def forward_flops(cfg: TransformerConfig, tokens_per_frame: int, frames: int, history_frames: int,
                  text_tokens: int) -> dict[str, float]:
    """Matmul FLOPs by part of one ``BlockTransformer`` forward over ``frames`` frames reading ``history_frames``."""
    d, f, n = cfg.dim, cfg.mlp_dim, tokens_per_frame
    queries, keys, context = frames * n, (frames + history_frames) * n, 1 + text_tokens
    layer = {
        "attn_proj": 8 * queries * d * d,
        "attention": 4 * queries * keys * d,
        "cross": 4 * queries * d * d + 4 * context * d * d + 4 * queries * context * d,
        "mlp": 4 * queries * d * f,
    }
    other = (2 * queries * cfg.patch_dim * d * 2  # patch embedding and head
             + 2 * text_tokens * (cfg.text_dim * d + d * d)  # text embedding MLP
             + 2 * frames * (cfg.time_freq_dim * d + d * d + 6 * d * d))  # time embedding and adaLN projection
    return {**{k: float(cfg.depth * v) for k, v in layer.items()}, "other": float(other)}


def autoencoder_decode_flops(cfg: AutoencoderConfig, latent_h: int, latent_w: int) -> float:
    """Matmul/conv FLOPs of decoding one latent frame with this project's autoencoder (torch's counter, meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = Autoencoder(cfg)
        z = torch.zeros(1, cfg.latent_channels, latent_h, latent_w)
    with FlopCounterMode(display=False) as counter:
        model.decode_raw(z)
    return float(counter.get_total_flops())


def _conv(c_in: int, c_out: int, kernel: int, positions: float) -> float:
    return 2.0 * c_in * c_out * kernel * positions


def _res(c_in: int, c_out: int, positions: float) -> float:
    """Wan's residual block: two 3x3x3 causal convs, a 1x1x1 shortcut when the width changes."""
    return _conv(c_in, c_out, 27, positions) + _conv(c_out, c_out, 27, positions) + (
        _conv(c_in, c_out, 1, positions) if c_in != c_out else 0.0)


def wan21_vae_decode_flops(latent_h: int, latent_w: int) -> float:
    """FLOPs of Wan2.1's VAE decoder per latent frame in steady streaming (4 video frames per latent frame; the first
    chunk's special case left out), counted layer by layer."""
    p = float(latent_h * latent_w)  # positions per frame at latent resolution
    total = _conv(16, 384, 27, p)
    total += 2 * _res(384, 384, p) + _conv(384, 3 * 384, 1, p) + 4 * p * p * 384 + _conv(384, 384, 1, p)
    # stage 0: 1 frame at p; then time x2 (causal (3,1,1) conv to 2x channels) and space x2 (3x3 conv, half width)
    total += 3 * _res(384, 384, p) + _conv(384, 768, 3, p) + 2 * _conv(384, 192, 9, 4 * p)
    # stage 1: 2 frames at 4p
    total += 2 * (_res(192, 384, 4 * p) + 2 * _res(384, 384, 4 * p))
    total += 2 * _conv(384, 768, 3, 4 * p) + 4 * _conv(384, 192, 9, 16 * p)
    # stage 2: 4 frames at 16p, then space x2 only
    total += 4 * (3 * _res(192, 192, 16 * p)) + 4 * _conv(192, 96, 9, 64 * p)
    # stage 3: 4 frames at 64p, then conv_out to RGB
    total += 4 * (3 * _res(96, 96, 64 * p) + _conv(96, 3, 27, 64 * p))
    return total


@dataclass(frozen=True)
class Estimate:
    """FLOPs of one block by part, and the frames/s they allow at a sustained rate."""

    name: str
    tokens_per_frame: int
    parts: dict[str, float]  # transformer parts summed over all passes, plus "decode"
    video_frames: int  # video frames one block shows

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def fps(self, tflops: float) -> float:
        return self.video_frames / (self.total / (tflops * 1e12))


def block_estimate(name: str, cfg: TransformerConfig, work: Workload,
                   decode: Callable[[int, int], float]) -> Estimate:
    """FLOPs of one env step: (steps + clean_passes) forwards over the block, then ``decode`` (FLOPs per latent
    frame of a latent h x w) for each of its latent frames."""
    tokens = work.tokens_per_frame(cfg.patch_size)
    one = forward_flops(cfg, tokens, cfg.block_frames, work.history_frames, work.text_tokens)
    passes = work.steps + work.clean_passes
    parts = {k: passes * v for k, v in one.items()}
    parts["decode"] = cfg.block_frames * decode(*work.latent_hw())
    return Estimate(name, tokens, parts, cfg.block_frames * work.video_per_latent)


def ours_decoder(h: int, w: int) -> float:
    return autoencoder_decode_flops(AutoencoderConfig(), h, w)


def paper_shape() -> Estimate:
    """The paper's setting: the Wan2.1-1.3B backbone with Wan's 1x2x2 patches at 832x480, 4 steps, 21 compressed
    history frames, umT5's 512 text tokens, Wan2.1's VAE (4 video frames per latent frame)."""
    work = Workload(height=480, width=832, text_tokens=512, video_per_latent=4)
    return block_estimate("wan1.3b (paper: patch 2, umT5, Wan VAE)", transformer_preset("wan1.3b", patch_size=2), work,
                          wan21_vae_decode_flops)


RESOLUTIONS = ((64, 64), (256, 256), (480, 832))


def table(tflops: float = H100_SUSTAINED_TFLOPS, history_frames: int = 21, steps: int = 4) -> tuple[list[str], list[list]]:
    """(header, rows): GFLOPs per block by part and implied frames/s, per preset and resolution, and the paper's."""
    estimates = [block_estimate(f"{preset} (ours)", transformer_preset(preset),
                                Workload(h, w, history_frames=history_frames, steps=steps), ours_decoder)
                 for preset in ("tiny", "small", "base", "wan1.3b") for h, w in RESOLUTIONS]
    estimates.append(paper_shape() if (history_frames, steps) == (21, 4) else block_estimate(
        "wan1.3b (paper)", transformer_preset("wan1.3b", patch_size=2),
        Workload(480, 832, history_frames=history_frames, text_tokens=512, steps=steps, video_per_latent=4),
        wan21_vae_decode_flops))
    header = ["model", "resolution", "tokens/frame", *[f"{p} GF" for p in (*PARTS, "decode")], "total GF",
              "attention share", f"FPS @ {tflops:g} TFLOP/s"]
    rows = []
    for (h, w), e in zip([*[r for _ in range(4) for r in RESOLUTIONS], (480, 832)], estimates):
        rows.append([e.name, f"{w}x{h}", e.tokens_per_frame, *[e.parts[p] / 1e9 for p in (*PARTS, "decode")],
                     e.total / 1e9, f"{e.parts['attention'] / e.total:.0%}", e.fps(tflops)])
    return header, rows


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    tflops = float(args[0]) if args else H100_SUSTAINED_TFLOPS
    print(format_table(*table(tflops)))


__all__ = ["Estimate", "H100_SUSTAINED_TFLOPS", "Workload", "autoencoder_decode_flops", "block_estimate",
           "forward_flops", "paper_shape", "table", "wan21_vae_decode_flops"]


if __name__ == "__main__":
    main()
