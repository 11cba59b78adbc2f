import time

import pytest
import torch

from magworld.model.config import PRESETS, transformer_preset
from magworld.model.transformer import BlockTransformer


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_wan_preset_builds_on_meta_with_1p3b_params():
    with torch.device("meta"):
        net = BlockTransformer(transformer_preset("wan1.3b"))
    n = _params(net)
    assert 1.17e9 <= n <= 1.43e9, n
    assert all(p.device.type == "meta" for p in net.parameters())
    assert net.cfg.dim == 1536 and net.cfg.depth == 30 and net.cfg.heads == 12


def test_every_preset_is_consistent():
    for name, cfg in PRESETS.items():
        assert sum(cfg.rope_dims) == cfg.head_dim, name
        assert cfg.latent_size % cfg.patch_size == 0, name
    with pytest.raises(ValueError, match="unknown model preset"):
        transformer_preset("huge")


def test_tiny_block_forward_is_fast_on_cpu():
    """The env calls the tiny generator a few times per step; one block with a long cache must be quick."""
    from magworld.model.cache import CacheConfig

    cfg = transformer_preset("tiny")
    net = BlockTransformer(cfg).eval()
    x = torch.randn(1, cfg.block_frames, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    pose, text, t = torch.zeros(1, 3, 3), torch.zeros(1, 1, cfg.text_dim), torch.rand(1, 3)
    cache = net.new_cache(CacheConfig("mag"))
    with torch.no_grad():
        for _ in range(30):
            net.write(x, pose, text, cache)
        net(x, t, pose, text, cache)
        start = time.perf_counter()
        for _ in range(10):
            net(x, t, pose, text, cache)
    per_call = (time.perf_counter() - start) / 10
    assert per_call < 0.1, f"tiny block forward took {per_call * 1e3:.1f} ms"
