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
