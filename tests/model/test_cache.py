import pytest
import torch

from magworld.model.cache import CacheConfig, KVCache
from magworld.model.generator import write_block
from magworld.model.memory_model import MemoryConfig, MemoryModel

from model_testing import micro_config, random_inputs


def _filled(policy: CacheConfig, blocks: int = 4) -> KVCache:
    """A cache written block by block by the production writer (the memory model's clean pass)."""
    mem = MemoryModel(MemoryConfig(transformer=micro_config())).eval()
    x, _, pose, text = random_inputs(mem.cfg.transformer, batch=2, frames=3 * blocks)
    cache = mem.net.new_cache(policy)
    with torch.no_grad():
        for s in range(0, x.shape[1], 3):
            write_block(mem, x[:, s:s + 3], pose[:, s:s + 3], text, cache)
    return cache


def test_mag_bytes_per_block_are_one_third_of_full():
    full, mag = _filled(CacheConfig("full")), _filled(CacheConfig("mag", kept=1))
    assert full.bytes() == 3 * mag.bytes() > 0
    assert mag.frames() == 4 and full.frames() == 12
    assert mag.frame_index == [2, 5, 8, 11]  # the last frame of each block, absolute indices
    assert mag.next_frame == full.next_frame == 12


def test_window_keeps_sinks_and_recent_frames():
    cache = _filled(CacheConfig("window", window=4, sink=2), blocks=4)
    assert cache.frame_index == [0, 1, 8, 9, 10, 11]
    assert cache.keys[0].shape[2] == 6


def test_snapshot_restore_round_trip():
    cache = _filled(CacheConfig("mag"), blocks=2)
    snap = cache.snapshot()
    before = cache.bytes()
    cache.reset()
    assert cache.frames() == 0 and cache.bytes() == 0 and cache.keys[0] is None
    cache.restore(snap)
    assert cache.bytes() == before and cache.frame_index == [2, 5]
    snap.keys[0].zero_()  # the restored cache owns its tensors
    assert cache.keys[0].abs().sum() > 0


def test_bad_policy_and_layer_count_raise():
    with pytest.raises(ValueError, match="unknown cache policy"):
        CacheConfig("lru")
    cache = KVCache(CacheConfig("full"), depth=2)
    with pytest.raises(ValueError, match="2 layers"):
        cache.append([torch.zeros(1, 1, 3, 4, 8)], [torch.zeros(1, 1, 3, 4, 8)], [0, 1, 2])
