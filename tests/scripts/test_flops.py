"""The FLOP model (scripts/gpu_check.py): a hand-counted micro case, the real network counted by torch, the table."""

import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from gpu_check import Workload, block_estimate, forward_flops, paper_shape, table, wan21_vae_decode_flops
from magworld.model.cache import CacheConfig, KVCache
from magworld.model.config import transformer_preset
from magworld.model.transformer import BlockTransformer


def test_hand_counted_micro_layer():
    # dim 6, one head, MLP 12, one layer; 1 frame of 2 tokens reading 1 cached frame; 1 text token (+ null)
    cfg = transformer_preset("tiny", dim=6, heads=1, depth=1, mlp_ratio=2.0)
    parts = forward_flops(cfg, tokens_per_frame=2, frames=1, history_frames=1, text_tokens=1)
    # L = 2 queries, K = 4 keys, context = 2
    assert parts["attn_proj"] == 8 * 2 * 6 * 6  # q, k, v, out: 4 products of (2 x 6) @ (6 x 6), 2 FLOPs each
    assert parts["attention"] == 2 * (2 * 2 * 4 * 6)  # scores (2 x 6) @ (6 x 4) and weights (2 x 4) @ (4 x 6)
    assert parts["cross"] == 2 * 2 * 6 * 6 * 2 + 2 * 2 * 6 * 12 + 2 * (2 * 2 * 2 * 6)  # q+out, k/v of 2 tokens, attn
    assert parts["mlp"] == 2 * 2 * 6 * 12 * 2  # up and down


@pytest.mark.parametrize("history", [0, 3])
def test_forward_flops_equal_torchs_count_of_the_network(history):
    cfg = transformer_preset("tiny", dim=48, depth=2, heads=2)
    net = BlockTransformer(cfg).eval()
    n, bf = cfg.tokens_per_frame, cfg.block_frames
    shape = (1, bf, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    text = torch.randn(1, 1, cfg.text_dim)
    cache = KVCache(CacheConfig(policy="full"), cfg.depth)
    if history:
        frames = torch.arange(history)
        with torch.no_grad():
            out = net(torch.randn(1, history, *shape[2:]), torch.zeros(1, history), torch.zeros(1, history, 3), text,
                      frame_index=frames, return_kv=True)
        cache.append(out.keys, out.values, frames.tolist())
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # math: counted
        net(torch.randn(shape), torch.rand(1, bf), torch.zeros(1, bf, 3), text, cache)
    expected = sum(forward_flops(cfg, n, bf, history, text_tokens=1).values())
    assert counter.get_total_flops() == expected


def test_block_estimate_counts_every_pass_and_the_decoder():
    cfg = transformer_preset("tiny")
    work = Workload(64, 64, history_frames=5, steps=3, clean_passes=1)
    est = block_estimate("x", cfg, work, decode=lambda h, w: 1000.0 * h * w)
    one = forward_flops(cfg, 16, 3, 5, 1)
    assert est.parts["mlp"] == 4 * one["mlp"] and est.parts["decode"] == 3 * 1000.0 * 64
    assert est.fps(1e-6) == pytest.approx(3 / (est.total / 1e6))


def test_wan_vae_scales_with_pixels_and_paper_shape_is_attention_heavy():
    assert wan21_vae_decode_flops(60, 104) > 3.9 * wan21_vae_decode_flops(30, 52)  # ~4x pixels (attention: more)
    paper = paper_shape()
    assert paper.tokens_per_frame == 30 * 52 and paper.video_frames == 12
    assert paper.parts["attention"] > paper.parts["mlp"] > 0  # 21 history frames: attention dominates
    header, rows = table()
    assert len(rows) == 13 and all(math.isfinite(r[-1]) and r[-1] > 0 for r in rows)
    tiny64 = rows[0]
    assert tiny64[2] == 16 and tiny64[-1] > rows[1][-1]  # 256x256 is slower than 64x64
