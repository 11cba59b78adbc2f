import torch

from magworld.model.flow import FlowConfig
from magworld.model.generator import write_block
from magworld.model.memory_model import MemoryConfig, MemoryModel

from model_testing import micro_config, random_inputs


def _model(depth: int = 2, kept: int = 1) -> MemoryModel:
    torch.manual_seed(0)
    model = MemoryModel(MemoryConfig(transformer=micro_config(depth=depth), kept=kept,
                                     flow=FlowConfig(steps=2)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def test_noisy_tokens_cannot_read_masked_clean_frames():
    model = _model(depth=1)  # one layer: a clean frame's key/value depends on that frame only
    x0, t, pose, text = random_inputs(model.cfg.transformer, batch=2, frames=6)
    noisy = torch.randn_like(x0)
    with torch.no_grad():
        ref = model.reconstruction_velocity(x0, noisy, t, pose, text)
        for frame in (0, 1, 3, 4):  # the non-kept frames
            bumped = x0.clone()
            bumped[:, frame] += 5.0
            out = model.reconstruction_velocity(bumped, noisy, t, pose, text)
            assert torch.equal(out, ref), frame
        bumped = x0.clone()
        bumped[:, 2] += 5.0  # the kept frame of block 0 is read
        assert (model.reconstruction_velocity(bumped, noisy, t, pose, text) - ref).abs().max() > 1e-3


def test_later_blocks_never_leak_into_earlier_ones():
    model = _model(depth=2)
    x0, t, pose, text = random_inputs(model.cfg.transformer, batch=1, frames=9)
    noisy = torch.randn_like(x0)
    bumped, bumped_noisy = x0.clone(), noisy.clone()
    bumped[:, 6:] += 5.0
    bumped_noisy[:, 6:] -= 5.0
    with torch.no_grad():
        ref = model.reconstruction_velocity(x0, noisy, t, pose, text)
        out = model.reconstruction_velocity(bumped, bumped_noisy, t, pose, text)
    assert torch.equal(out[:, :6], ref[:, :6])


def test_cache_path_equals_parallel_training_pass():
    """The production writer + a read through the mag cache see exactly what the training mask allows."""
    model = _model(depth=2)
    x0, t, pose, text = random_inputs(model.cfg.transformer, batch=2, frames=9)
    noisy = torch.randn_like(x0)
    t = t[:, ::3].repeat_interleave(3, 1)
    with torch.no_grad():
        parallel = model.reconstruction_velocity(x0, noisy, t, pose, text)
        cache, outs = model.new_cache(), []
        for s in range(0, 9, 3):
            write_block(model, x0[:, s:s + 3], pose[:, s:s + 3], text, cache)
            index = torch.arange(s, s + 3)
            outs.append(model.net(noisy[:, s:s + 3], t[:, s:s + 3], pose[:, s:s + 3], text, cache,
                                  frame_index=index).prediction)
    assert cache.frames() == 3
    assert (torch.cat(outs, 1) - parallel).abs().max() < 1e-5


def test_loss_is_finite_and_trains_and_is_seeded():
    model = _model(depth=1)
    model.train()
    x0, _, pose, text = random_inputs(model.cfg.transformer, batch=2, frames=6)
    a = model.loss(x0, pose, text, generator=torch.Generator().manual_seed(5))
    b = model.loss(x0, pose, text, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(a) and torch.equal(a, b)
    a.backward()
    assert all(p.grad is not None for p in model.net.blocks.parameters())


def test_reconstruct_shapes_and_compression():
    model = _model(depth=1, kept=1)
    x0, _, pose, text = random_inputs(model.cfg.transformer, batch=2, frames=6)
    out, cache = model.reconstruct(x0, pose, text, generator=torch.Generator().manual_seed(0))
    assert out.shape == x0.shape and torch.isfinite(out).all()
    assert cache.frames() == 2 and model.cfg.compression == 3.0
