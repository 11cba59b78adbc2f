"""BlockTransformer contracts: determinism, batch independence, pose-aware positions, patchify. The cached path
against the parallel training pass is in test_generator (with the production writer)."""

import torch
from model_testing import micro_config, perturbed, random_inputs

from magworld.model.generator import write_block
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.transformer import BlockTransformer


def _memory(**overrides) -> MemoryModel:
    torch.manual_seed(1)
    return perturbed(MemoryModel(MemoryConfig(transformer=micro_config(**overrides))), 1).eval()


def test_same_seed_same_output_and_batch_independence():
    cfg = micro_config()
    torch.manual_seed(3)
    a = perturbed(BlockTransformer(cfg), 1).eval()
    torch.manual_seed(3)
    b = perturbed(BlockTransformer(cfg), 1).eval()
    x, t, pose, text = random_inputs(cfg, batch=3, frames=3)
    with torch.no_grad():
        ya, yb = a(x, t, pose, text).prediction, b(x, t, pose, text).prediction
        single = a(x[1:2], t[1:2], pose[1:2], text[1:2]).prediction
    assert torch.equal(ya, yb)
    assert (ya[1:2] - single).abs().max() < 1e-5


def test_pose_aware_yaw_is_periodic_and_matters():
    mem = _memory(pose_aware=True)
    net = mem.net
    x, t, pose, text = random_inputs(net.cfg, batch=1, frames=3)
    turned = pose.clone()
    turned[..., 0] += 360.0
    moved = pose.clone()
    moved[..., 0] += 30.0
    with torch.no_grad():
        ref, same, other = (net(x, t, p, text).prediction for p in (pose, turned, moved))
        assert (ref - same).abs().max() < 1e-3  # float32 angles of ~400 degrees
        # a single block rotated as a whole keeps relative positions: only cached history can tell
        cache = net.new_cache(mem.new_cache().config)
        write_block(mem, x, pose, text, cache)
        a = net(x, t, pose, text, cache).prediction
        b = net(x, t, moved, text, cache).prediction
    assert (a - b).abs().max() > 1e-3


def test_patchify_round_trip():
    net = BlockTransformer(micro_config())
    x = torch.randn(2, 3, 4, 4, 4)
    assert torch.equal(net.unpatchify(net.patchify(x)), x)
