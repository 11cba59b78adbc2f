"""Every attention mask against its definition, by brute force over (query, key) frames and tokens; the policy
masks against what a real KVCache holds."""

from __future__ import annotations

import itertools

import pytest
import torch

from magworld.model.cache import CacheConfig, KVCache
from magworld.model.masks import cache_writer_mask, held_frames, memory_attention_mask, reader_mask, writer_mask

CASES = [("mag", 3, 1, 0, 0), ("mag", 3, 2, 0, 0), ("full", 3, 1, 0, 0), ("window", 3, 1, 3, 3),
         ("window", 3, 1, 4, 2), ("window", 2, 1, 6, 0), ("window", 3, 1, 0, 3)]  # policy, block, kept, window, sink


def cache_contents(policy: str, bf: int, kept: int, window: int, sink: int, blocks: int) -> list[set[int]]:
    """The frames a KVCache of ``policy`` holds when each block starts (the definition of the policies)."""
    cache, held = KVCache(CacheConfig(policy, window=window, sink=sink, kept=kept), depth=1), []
    for b in range(blocks):
        held.append(set(cache.frame_index))
        kv = [torch.zeros(1, 1, bf, 1, 1)]
        cache.append(kv, kv, list(range(b * bf, (b + 1) * bf)))
    return held


@pytest.mark.parametrize("policy,bf,kept,window,sink", CASES)
def test_held_frames_is_what_the_cache_holds(policy, bf, kept, window, sink):
    blocks = 5
    held = cache_contents(policy, bf, kept, window, sink, blocks)
    mask = held_frames(CacheConfig(policy, window=window, sink=sink, kept=kept), blocks * bf, bf)
    for q, k in itertools.product(range(blocks * bf), repeat=2):
        assert bool(mask[q, k]) == (k in held[q // bf]), (q, k)


@pytest.mark.parametrize("policy,bf,kept,window,sink", CASES)
def test_writer_and_reader_masks_by_brute_force(policy, bf, kept, window, sink):
    blocks, n = 4, 2
    frames = blocks * bf
    held = cache_contents(policy, bf, kept, window, sink, blocks)
    config = held_frames(CacheConfig(policy, window=window, sink=sink, kept=kept), frames, bf)
    writer, reader = writer_mask(config, bf, kept, tokens_per_frame=n), reader_mask(config, bf, tokens_per_frame=n)
    assert writer.shape == (frames * n, frames * n) and reader.shape == (frames * n, 2 * frames * n)
    for q, k in itertools.product(range(frames * n), repeat=2):
        fq, fk = q // n, k // n
        same = fq // bf == fk // bf
        kept_key = fk % bf >= bf - kept
        # the writer: its own block, and the kept frames of the history its policy holds
        assert bool(writer[q, k]) == (same or (fk in held[fq // bf] and kept_key)), (q, k)
        # the reader: every held clean frame (never its own clean block), and its own noisy block
        assert bool(reader[q, k]) == (fk in held[fq // bf]), (q, k)
        assert bool(reader[q, frames * n + k]) == same, (q, k)


@pytest.mark.parametrize("policy,bf,kept,window,sink", CASES)
def test_run_time_writer_mask_is_the_training_writer_mask_of_the_last_block(policy, bf, kept, window, sink):
    blocks, n = 4, 2
    cache = KVCache(CacheConfig(policy, window=window, sink=sink, kept=kept), depth=1)
    for b in range(blocks - 1):
        kv = [torch.zeros(1, 1, bf, n, 1)]
        cache.append(kv, kv, list(range(b * bf, (b + 1) * bf)))
    run_time = cache_writer_mask(cache, bf, bf, kept, n, "cpu")
    train = writer_mask(held_frames(cache.config, blocks * bf, bf), bf, kept, n)[-bf * n:]  # rows of the last block
    columns = [f * n + j for f in [*cache.frame_index, *range((blocks - 1) * bf, blocks * bf)] for j in range(n)]
    expected = train[:, columns]
    if run_time is None:
        assert bool(expected.all())
    else:
        assert torch.equal(run_time, expected)


def test_memory_attention_mask_by_brute_force():
    for blocks, bf, kept, n in [(3, 3, 1, 2), (2, 3, 2, 1), (2, 5, 1, 2), (1, 1, 1, 3)]:
        frames = blocks * bf
        total = 2 * frames * n
        expected = torch.zeros(total, total, dtype=torch.bool)
        for q, k in itertools.product(range(total), repeat=2):
            q_noisy, k_noisy = q >= frames * n, k >= frames * n
            fq, fk = (q // n) % frames, (k // n) % frames
            bq, bk = fq // bf, fk // bf
            k_kept = fk % bf in range(bf - kept, bf)
            if not q_noisy:  # clean: the compressed history and its own clean block
                expected[q, k] = not k_noisy and (bk == bq or (bk < bq and k_kept))
            else:  # noisy: the compressed history incl. its own block's kept frames, and its own noisy block
                expected[q, k] = (k_noisy and bk == bq) or (not k_noisy and bk <= bq and k_kept)
        assert torch.equal(memory_attention_mask(blocks, bf, kept, n), expected), (blocks, bf, kept, n)
