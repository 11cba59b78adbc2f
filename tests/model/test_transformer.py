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


def test_turned_values_arrive_rotated_by_the_key_minus_query_place():
    """value_rope by definition: a query at spatial angles a_q reading key j receives R(a_j - a_q) v_j, so a value read
    at its own place arrives unchanged; checked against attention written out by hand for one layer."""
    from magworld.model.rope import Turn, rotate, spatial_angles
    from magworld.model.transformer import Angles

    cfg = micro_config(value_rope=True)
    torch.manual_seed(0)
    attn = perturbed(BlockTransformer(cfg), 2).blocks[0].attn.eval()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 6, cfg.dim, generator=g)  # (B, L, D)
    own = torch.rand(1, 6, cfg.head_dim // 2, generator=g) * 6.0  # (B, L, hd/2) angles
    space = spatial_angles(own, cfg.rope_dims[0])
    with torch.no_grad():
        out, _, _ = attn(x, Angles(Turn.of(own), None, Turn.of(space)), None, None)
        q, k, v = attn.qkv(x).unflatten(-1, (3, attn.heads, -1)).permute(2, 0, 3, 1, 4)  # (B, H, L, hd)
        q, k = rotate(attn.q_norm(q), own), rotate(attn.k_norm(k), own)
        weights = torch.softmax(q @ k.transpose(-1, -2) / cfg.head_dim ** 0.5, -1)  # (B, H, Lq, Lk)
        relative = space[:, None, :, :] - space[:, :, None, :]  # (B, Lq, Lk, hd/2): a_k - a_q
        turned = rotate(v.unsqueeze(2).expand(-1, -1, 6, -1, -1), relative)  # (B, H, Lq, Lk, hd)
        by_hand = attn.out((weights.unsqueeze(-1) * turned).sum(3).transpose(1, 2).flatten(2))
        plain, _, _ = attn(x, Angles(Turn.of(own), None, None), None, None)
    torch.testing.assert_close(out, by_hand, atol=1e-5, rtol=1e-5)
    assert (out - plain).abs().max() > 1e-3  # the turn matters
