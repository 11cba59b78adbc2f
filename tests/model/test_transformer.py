import pytest
import torch

from magworld.model.cache import CacheConfig
from magworld.model.transformer import BlockTransformer, block_causal_mask

from model_testing import micro_config, random_inputs


def _perturbed(net: BlockTransformer) -> BlockTransformer:
    """Give the zero-initialised gates and head random values so every path matters."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


def _incremental(net, x, t, pose, text, policy: CacheConfig):
    """Each block: predict at its noise level with the cache, then write its clean pass."""
    bf, cache, outs = net.cfg.block_frames, net.new_cache(policy), []
    for s in range(0, x.shape[1], bf):
        sl = slice(s, s + bf)
        outs.append(net(x[:, sl], t[:, sl], pose[:, sl], text, cache).prediction)
        net.write(x[:, sl], pose[:, sl], text, cache)
    return torch.cat(outs, 1), cache


def _recompute(net, x, t, pose, text, window=None, sink=0):
    """All blocks in one pass: [clean frames | noisy frames] with the block-causal mask on the clean half."""
    cfg, frames = net.cfg, x.shape[1]
    causal = block_causal_mask(frames, cfg.block_frames, cfg.tokens_per_frame, window, sink)
    history = causal & ~block_causal_mask(frames, cfg.block_frames, cfg.tokens_per_frame, window=0, sink=0)
    same = block_causal_mask(frames, cfg.block_frames, cfg.tokens_per_frame, window=0, sink=0)
    mask = torch.cat([torch.cat([causal, torch.zeros_like(causal)], 1), torch.cat([history, same], 1)], 0)
    index = torch.arange(frames)
    out = net(torch.cat([x, x], 1), torch.cat([torch.zeros_like(t), t], 1), torch.cat([pose, pose], 1), text,
              frame_index=torch.cat([index, index]), mask=mask)
    return out.prediction[:, frames:]


@pytest.mark.parametrize("pose_aware", [True, False])
def test_full_cache_equals_block_causal_recompute(pose_aware):
    net = _perturbed(BlockTransformer(micro_config(pose_aware=pose_aware)))
    x, t, pose, text = random_inputs(net.cfg, batch=2, frames=12)
    with torch.no_grad():
        inc, cache = _incremental(net, x, t, pose, text, CacheConfig("full"))
        full = _recompute(net, x, t, pose, text)
    assert cache.frames() == 12
    assert (inc - full).abs().max() < 1e-5


@pytest.mark.parametrize("window,sink", [(9, 3), (3, 3), (6, 0)])
def test_window_cache_equals_windowed_recompute(window, sink):
    net = _perturbed(BlockTransformer(micro_config()))
    x, t, pose, text = random_inputs(net.cfg, batch=2, frames=15)
    with torch.no_grad():
        inc, cache = _incremental(net, x, t, pose, text, CacheConfig("window", window=window, sink=sink))
        ref = _recompute(net, x, t, pose, text, window=window, sink=sink)
        full = _recompute(net, x, t, pose, text)
    assert cache.frames() == min(15, window + sink)
    assert (inc - ref).abs().max() < 1e-5
    # inside the window (before anything is evicted) the window cache is exactly the full cache
    first = (window + sink) // 3 * 3 + 3
    assert (inc[:, :first] - full[:, :first]).abs().max() < 1e-5
    if window + sink < 12:  # and after eviction it is not
        assert (inc - full).abs().max() > 1e-4


def test_same_seed_same_output_and_batch_independence():
    cfg = micro_config()
    torch.manual_seed(3)
    a = _perturbed(BlockTransformer(cfg))
    torch.manual_seed(3)
    b = _perturbed(BlockTransformer(cfg))
    x, t, pose, text = random_inputs(cfg, batch=3, frames=3)
    with torch.no_grad():
        ya, yb = a(x, t, pose, text).prediction, b(x, t, pose, text).prediction
        single = a(x[1:2], t[1:2], pose[1:2], text[1:2]).prediction
    assert torch.equal(ya, yb)
    assert (ya[1:2] - single).abs().max() < 1e-5


def test_pose_aware_yaw_is_periodic_and_matters():
    net = _perturbed(BlockTransformer(micro_config(pose_aware=True)))
    x, t, pose, text = random_inputs(net.cfg, batch=1, frames=3)
    turned = pose.clone()
    turned[..., 0] += 360.0
    moved = pose.clone()
    moved[..., 0] += 30.0
    with torch.no_grad():
        ref, same, other = (net(x, t, p, text).prediction for p in (pose, turned, moved))
    assert (ref - same).abs().max() < 1e-3  # float32 angles of ~400 degrees
    # a single block rotated as a whole keeps relative positions: only cached history can tell
    cache = net.new_cache(CacheConfig("full"))
    net.write(x, pose, text, cache)
    with torch.no_grad():
        a = net(x, t, pose, text, cache).prediction
        b = net(x, t, moved, text, cache).prediction
    assert (a - b).abs().max() > 1e-3


def test_patchify_round_trip():
    net = BlockTransformer(micro_config())
    x = torch.randn(2, 3, 4, 4, 4)
    assert torch.equal(net.unpatchify(net.patchify(x)), x)
