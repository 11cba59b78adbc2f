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


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_its_network(name):
    with torch.device("meta"):
        net = BlockTransformer(transformer_preset(name))
    assert net.patch_embed.in_features == net.cfg.patch_dim and len(net.blocks) == net.cfg.depth


def test_unknown_preset_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="unknown model preset"):
        transformer_preset("huge")
    with pytest.raises(ValueError, match="divisible by patch_size"):
        transformer_preset("tiny", patch_size=3)
    with pytest.raises(ValueError, match="max_age_frames"):
        transformer_preset("tiny", max_age_frames=0)
