"""Generator stage contracts: the parallel training pass equal to the
block-by-block run-time path (cache written by the memory model, read by the generator) for every policy."""

from __future__ import annotations

import pytest
import torch
from model_testing import micro_config, perturbed, random_inputs

from magworld.model.generator import Generator, GeneratorConfig, write_block, write_clip
from magworld.model.masks import cache_writer_mask, held_frames, reader_mask
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.train.common import motion_phrase
from magworld.train.common import generator_loss


def models(seed: int = 0):
    tc = micro_config()
    return (perturbed(Generator(GeneratorConfig(transformer=tc)), seed).eval(),
            perturbed(MemoryModel(MemoryConfig(transformer=tc)), seed + 1).eval())


@pytest.mark.parametrize("policy,window,sink,pose_aware", [
    ("mag", 3, 3, True), ("mag", 3, 3, False), ("full", 3, 3, True), ("full", 3, 3, False),
    ("window", 3, 3, True), ("window", 6, 0, True), ("window", 9, 3, False)])
def test_parallel_training_pass_equals_block_by_block_runtime(policy, window, sink, pose_aware):
    """Training (write_clip + reader_mask over a whole clip, at any frame offset) equals run time (write_block
    and a cached read, block by block) for every policy, including window eviction."""
    tc = micro_config(pose_aware=pose_aware)
    gen = perturbed(Generator(GeneratorConfig(transformer=tc, window=window, sink=sink)), 0).eval()
    mem = perturbed(MemoryModel(MemoryConfig(transformer=tc)), 1).eval()
    cfg, blocks = gen.cfg, 5
    x0, t, pose, text = random_inputs(tc, 2, 3 * blocks)
    x_t = torch.randn_like(x0)
    t = t[:, ::3].repeat_interleave(3, 1)
    index = torch.arange(21, 21 + 3 * blocks)  # the training offset: only position differences matter
    with torch.no_grad():
        clip = write_clip(mem, x0, pose, text, cfg.cache_config(policy), index)
        mask = reader_mask(held_frames(cfg.cache_config(policy), 3 * blocks, 3), 3, tc.tokens_per_frame)
        parallel = gen(x_t, t, pose, text, clip, frame_index=index, mask=mask).prediction
        live = gen.new_cache(policy)
        for b in range(blocks):
            s = slice(3 * b, 3 * b + 3)
            step = gen(x_t[:, s], t[:, s], pose[:, s], text, live).prediction
            torch.testing.assert_close(step, parallel[:, s], atol=2e-5, rtol=1e-4)
            write_block(mem, x0[:, s], pose[:, s], text, live)
    assert live.frames() == {"mag": blocks, "window": min(3 * blocks, window + sink), "full": 3 * blocks}[policy]


def test_cache_writer_mask_only_for_uncompressed_caches():
    gen, mem = models()
    tc = gen.cfg.transformer
    x0, _, pose, text = random_inputs(tc, 1, 6)
    for policy, expect_mask in (("mag", False), ("full", True)):
        cache = gen.new_cache(policy)
        write_block(mem, x0[:, :3], pose[:, :3], text, cache)
        mask = cache_writer_mask(cache, 3, 3, 1, tc.tokens_per_frame, "cpu")
        assert (mask is not None) == expect_mask
        if mask is not None:  # only the kept frame (index 2) of the cached block is visible to the writer
            n = tc.tokens_per_frame
            assert mask[0, :3 * n].tolist() == [False] * 2 * n + [True] * n


def test_generator_loss_is_finite_and_trains_only_the_generator():
    gen, mem = models()
    gen.train()
    mem.requires_grad_(False)
    tc = gen.cfg.transformer
    x0, _, pose, text = random_inputs(tc, 2, 9)
    loss = generator_loss(gen, mem, x0, pose, text, text, "mag", offset=6, generator=torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(p.grad is not None for p in gen.parameters() if p.requires_grad)
    assert all(p.grad is None for p in mem.parameters())


@pytest.mark.parametrize("pure_noise", [0.0, 0.5, 1.0])
def test_pure_noise_sets_that_share_of_block_times_to_one(pure_noise, monkeypatch):
    """pure_noise p: each block's training time is 1 with probability p (all at 1, none, some), else the shifted draw."""
    gen, mem = models()
    x0, _, pose, text = random_inputs(gen.cfg.transformer, 8, 9)
    seen = []
    forward = gen.forward
    monkeypatch.setattr(gen, "forward", lambda x, t, *a, **kw: seen.append(t) or forward(x, t, *a, **kw))
    with torch.no_grad():
        generator_loss(gen, mem, x0, pose, text, text, "mag", offset=0, generator=torch.Generator().manual_seed(0),
                       pure_noise=pure_noise)
    share = float((seen[0][:, ::3] == 1.0).float().mean())  # (B, blocks): one time per block
    if pure_noise == 0.5:
        assert 0.0 < share < 1.0
    else:
        assert share == pure_noise


def test_motion_phrase():
    still = torch.tensor([[10.0, 0.0, 60.0]] * 6)
    pan = torch.tensor([[355.0 + 5 * k, 0.0, 60.0] for k in range(6)])
    zoom = torch.tensor([[0.0, 0.0, 60.0 - 3 * k] for k in range(6)])
    assert motion_phrase(still, 3) == "the camera holds still"
    assert motion_phrase(pan, 3) == "the camera pans right"  # across the 360° seam
    assert motion_phrase(zoom, 3) == "the camera zooms in"
