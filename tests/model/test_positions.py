"""Rotary time positions are relative to the reading block and bounded by max_age_frames, for any episode length."""

from __future__ import annotations

import math

import pytest
import torch
from model_testing import micro_config, perturbed, random_inputs

from magworld.model.generator import Generator, GeneratorConfig, write_block, write_clip
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.rope import time_positions

MAX_AGE = 12


def models():
    tc = micro_config(max_age_frames=MAX_AGE)
    return (perturbed(Generator(GeneratorConfig(transformer=tc)), 0).eval(),
            perturbed(MemoryModel(MemoryConfig(transformer=tc)), 1).eval())


def test_time_positions_are_relative_and_clamped():
    got = time_positions([0, 5, 9_985, 9_990, 9_998], reference=10_000, max_age=MAX_AGE)
    assert got.tolist() == [-12.0, -12.0, -12.0, -10.0, -2.0]


def history(mem, x0, pose, text, old_start: int, recent_start: int):
    """A mag cache holding 3 blocks written at old_start.. and 3 more at recent_start.. (the same contents)."""
    cache = mem.new_cache()
    cache.next_frame = old_start
    for b in range(6):
        if b == 3:
            cache.next_frame = recent_start
        write_block(mem, x0[:, 3 * b:3 * b + 3], pose[:, 3 * b:3 * b + 3], text, cache)
    return cache


def test_a_block_at_frame_10000_sees_only_trained_ages(monkeypatch):
    gen, mem = models()
    tc = gen.cfg.transformer
    x0, t, pose, text = random_inputs(tc, 2, 21)
    seen = []
    for net in (gen.net, mem.net):  # record every time position the rotary embedding is given
        rope = net.rope
        monkeypatch.setattr(rope, "forward", lambda time, p, f=rope.forward: seen.append(time) or f(time, p))
        monkeypatch.setattr(rope, "correct_history",
                            lambda k, time, f=rope.correct_history: seen.append(time) or f(k, time))
    with torch.no_grad():
        far = history(mem, x0, pose, text, old_start=0, recent_start=9_990)  # blocks at 0.. and 9,990..9,998
        assert far.next_frame == 9_999  # the block generated is frames 9,999..10,001
        out_far = gen(x0[:, 18:], t[:, 18:], pose[:, 18:], text, far).prediction
    positions = torch.cat(seen)
    assert positions.min() >= -MAX_AGE and positions.max() < tc.block_frames

    # the same history at small indices whose old blocks are also past the bound gives the same block
    near_start = 3 * math.ceil((MAX_AGE + 17) / 3)  # old blocks >= MAX_AGE older than every later block
    with torch.no_grad():
        near = history(mem, x0, pose, text, old_start=0, recent_start=near_start - 9)
        out_near = gen(x0[:, 18:], t[:, 18:], pose[:, 18:], text, near).prediction
        torch.testing.assert_close(out_far, out_near, atol=1e-5, rtol=1e-5)
        # and a history whose old blocks are younger than the bound is a different one: ages are seen
        young = history(mem, x0, pose, text, old_start=0, recent_start=9)
        assert (gen(x0[:, 18:], t[:, 18:], pose[:, 18:], text, young).prediction - out_near).abs().max() > 1e-4


def test_time_rotated_view_is_rebuilt_when_the_cache_changes():
    gen, mem = models()
    x0, t, pose, text = random_inputs(gen.cfg.transformer, 1, 9)
    with torch.no_grad():
        cache = mem.new_cache()
        write_block(mem, x0[:, :3], pose[:, :3], text, cache)
        snap = cache.snapshot()
        write_block(mem, x0[:, 3:6], pose[:, 3:6], text, cache)
        read = lambda c: gen(x0[:, 6:], t[:, 6:], pose[:, 6:], text, c).prediction  # noqa: E731
        two_blocks = read(cache)
        cache.restore(snap)  # fewer frames, same next_frame: the view must not be reused
        cache.next_frame = 6
        fresh = mem.new_cache()
        write_block(mem, x0[:, :3], pose[:, :3], text, fresh)
        fresh.next_frame = 6
        assert torch.equal(read(cache), read(fresh)) and not torch.allclose(read(cache), two_blocks)


def test_training_clips_longer_than_the_bound_are_refused():
    gen, mem = models()
    tc = gen.cfg.transformer
    frames = MAX_AGE + 2 * tc.block_frames  # the last block would read ages up to MAX_AGE + 3
    x0, _, pose, text = random_inputs(tc, 1, frames)
    with pytest.raises(ValueError, match="max_age_frames"):
        write_clip(mem, x0, pose, text, gen.cfg.cache_config("mag"), torch.arange(frames))
