"""The reproject generator: its geometric input at run time is exactly what training builds from the same clip,
it really changes the output, it survives snapshot/restore, and a missing or stray ``cond`` is an error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_testing import micro_config, perturbed

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import HashingTextEncoder
from magworld.train.common import training_condition

SIZE = 32


@pytest.fixture(scope="module")
def world():
    tc = micro_config()
    torch.manual_seed(0)
    gen = perturbed(Generator(GeneratorConfig(transformer=tc, reproject=True)), 1)
    mem = perturbed(MemoryModel(MemoryConfig(transformer=tc)), 2)
    ae = Autoencoder(AutoencoderConfig(latent_channels=tc.latent_channels, channels=[8, 8, 8], groups=4))
    return WorldModel(gen, mem, ae, HashingTextEncoder(16), memory="mag", device="cpu")


def clip(blocks: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (2, blocks, 3, SIZE, SIZE, 3), dtype=np.uint8)
    yaw = np.arange(blocks * 3, dtype=np.float32).reshape(blocks, 3) * 5.0  # a steady pan
    poses = np.stack([np.stack([yaw + 30 * w, np.full_like(yaw, 3.0 * w), np.full_like(yaw, 60.0)], -1)
                      for w in range(2)]).astype(np.float32)  # (2, B, 3, 3)
    return frames, poses


def test_run_time_condition_equals_training_condition(world, monkeypatch):
    """The world's geometric input is what training builds from the same clip: after given blocks it reprojects the
    real last frame the world was shown, after a generated block that block's decoded last frame (carry="condition"; a
    sharp world reprojects the composite it showed instead, test_sharp_shows_the_composite_and_keeps_its_last_frame)."""
    frames, poses = clip(4)
    world.carry = "condition"
    seen = []
    forward = world.generator.forward

    def spy(*args, cond=None, **kw):
        seen.append(cond.clone())
        return forward(*args, cond=cond, **kw)

    monkeypatch.setattr(world.generator, "forward", spy)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    world.memorize(frames[:, 1], poses[:, 1])
    made = world.generate(poses[:, 2], ["a", "b"]).latents  # block 2 from the memorized block 1
    calls = len(seen)
    world.generate(poses[:, 3], ["a", "b"])  # block 3 from the generated block 2
    world.carry = "sharp"
    shown = torch.cat([world._encode(frames[:, b]) for b in range(2)] + [made, torch.zeros_like(made)], 1)
    video = torch.from_numpy(frames).permute(0, 1, 2, 5, 3, 4).flatten(1, 2)  # (N, 12, 3, H, W) uint8
    with torch.inference_mode():
        expected = training_condition(world.autoencoder, shown, torch.from_numpy(poses.reshape(2, 12, 3)), 3, video, 2)
        decoded = training_condition(world.autoencoder, shown, torch.from_numpy(poses.reshape(2, 12, 3)), 3)
    torch.testing.assert_close(seen[0], expected[:, 6:9], atol=1e-5, rtol=0)  # every sampler step sees the same input
    torch.testing.assert_close(seen[calls], expected[:, 9:12], atol=1e-5, rtol=0)
    assert not torch.allclose(seen[0], decoded[:, 6:9], atol=1e-3)  # the real frame, not its round trip
    assert all(torch.equal(c, seen[0]) for c in seen[:calls])
    assert float(seen[0][:, :, -1].min()) < 1 and float(seen[0][:, :, -1].max()) > 0.99  # coverage: partly seen


def test_condition_changes_the_output_and_replays_after_restore(world):
    frames, poses = clip(3, seed=1)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    first = world.generate(poses[:, 1], ["a", "b"]).latents
    world.restore(snap)
    torch.testing.assert_close(world.generate(poses[:, 1], ["a", "b"]).latents, first)
    world.restore(snap)
    world._last_frame = world._last_frame.flip(-1)  # another picture at the same pose
    assert not torch.allclose(world.generate(poses[:, 1], ["a", "b"]).latents, first, atol=1e-4)


def test_cond_is_required_exactly_for_reproject_generators():
    tc = micro_config()
    x = torch.zeros(1, 3, tc.latent_channels, 4, 4)
    t, pose, text = torch.zeros(1, 3), torch.zeros(1, 3, 3), torch.zeros(1, 1, 16)
    with pytest.raises(ValueError, match="reproject=True"):
        Generator(GeneratorConfig(transformer=tc, reproject=True))(x, t, pose, text)
    with pytest.raises(ValueError, match="reproject=False"):
        Generator(GeneratorConfig(transformer=tc))(x, t, pose, text, cond=torch.zeros(1, 3, 5, 4, 4))


def loss_setup(model_seed: int, data_seed: int):
    """A micro reproject generator and memory model, and a 2-block clip: latents, poses, text and reprojected latents
    (B = 2, T = 6, 4 x 4 cells) for generator_loss."""
    tc = micro_config()
    torch.manual_seed(0)
    gen = perturbed(Generator(GeneratorConfig(transformer=tc, reproject=True)), model_seed)
    mem = perturbed(MemoryModel(MemoryConfig(transformer=tc)), model_seed + 1)
    g = torch.Generator().manual_seed(data_seed)
    latents = torch.randn(2, 6, tc.latent_channels, 4, 4, generator=g)
    pose, text = torch.zeros(2, 6, 3), torch.zeros(2, 1, 16)
    return gen, mem, latents, pose, text, torch.randn(2, 6, tc.latent_channels, 4, 4, generator=g)


def test_uncovered_weight_weighs_the_loss_by_coverage():
    """The loss is the mean squared error weighted per latent cell by 1 + w * (1 - coverage): uniform coverage
    leaves it unchanged (the weight is normalised); with half the cells missed, the losses at w = 0 and w = 3 fix
    the two halves' errors, which must then predict the loss at w = 1."""
    from magworld.train.common import generator_loss

    gen, mem, latents, pose, text, reprojected = loss_setup(4, 1)

    def loss(coverage: torch.Tensor, weight: float) -> float:
        cond = torch.cat([reprojected, coverage.expand(2, 6, 1, 4, 4)], 2)
        return float(generator_loss(gen, mem, latents, pose, text, text, "mag", 0, torch.Generator().manual_seed(7),
                                    cond=cond, uncovered_weight=weight)["loss"])

    for uniform in (torch.ones(1, 1, 1, 4, 4), torch.zeros(1, 1, 1, 4, 4)):
        assert loss(uniform, 3.0) == pytest.approx(loss(uniform, 0.0), rel=1e-6)
    half = torch.ones(1, 1, 1, 4, 4)
    half[..., :2] = 0.0  # the left half is missed
    plain, w3 = loss(half, 0.0), loss(half, 3.0)  # (e_cov + e_miss) / 2, (e_cov + 4 e_miss) / 5
    e_miss = (5 * w3 - 2 * plain) / 3
    e_cov = 2 * plain - e_miss
    assert abs(e_miss - e_cov) > 1e-3 * plain  # the halves differ, so the check below can fail
    assert loss(half, 1.0) == pytest.approx((e_cov + 2 * e_miss) / 3, rel=1e-5)


def test_condition_frames_are_the_decoded_latents_with_the_kept_last_frame(world, monkeypatch):
    """A ``condition`` world decodes its block's last frame once (kept as the next geometric input) and shows it: the
    frames equal the autoencoder's decode of the block's latents, the kept frame is the shown last frame, and a step
    decodes each frame once."""
    frames, poses = clip(3, seed=2)
    world.carry = "condition"
    try:
        world.start(frames[:, 0], poses[:, 0], ["a", "b"])
        snap = world.snapshot()
        latents = world.generate(poses[:, 1], ["a", "b"]).latents  # (N, F, C, h, w)
        world.restore(snap)
        shown, decoded_frames = step_counting_decodes(world, monkeypatch, poses[:, 1])
    finally:
        world.carry = "sharp"
    assert decoded_frames == shown.shape[0] * shown.shape[1]
    with torch.inference_mode():
        decoded = world.autoencoder.decode(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])
    expected = decoded.permute(0, 1, 3, 4, 2).numpy().astype(int)
    assert np.abs(shown.astype(int) - expected).max() <= 1  # batch-size rounding of the conv at most
    assert np.array_equal(shown[:, -1], world.autoencoder.to_uint8(world._last_frame).permute(0, 2, 3, 1).numpy())


def sampled_block(world, monkeypatch, snap, poses, carry: str = "sharp") -> tuple[torch.Tensor, torch.Tensor]:
    """From ``snap``, the block ``world`` samples under ``carry`` before any composite (N, F, C, h, w), and the latents
    it returns (the fixture's default carry, sharp, restored after)."""
    import magworld.model.pipeline as pipeline

    sampled = []
    keep = pipeline.keep_seen_pixels
    monkeypatch.setattr(pipeline, "keep_seen_pixels", lambda ae, x0, warp: sampled.append(x0) or keep(ae, x0, warp))
    world.restore(snap)
    world.carry = carry
    try:
        latents = world.generate(poses, ["a", "b"]).latents
    finally:
        world.carry = "sharp"
        monkeypatch.undo()
    return (sampled[0] if sampled else latents), latents


def test_sharp_samples_with_the_covered_cells_kept_and_condition_keeps_none(world, monkeypatch):
    """carry="sharp" samples with every latent cell the last shown frame covers whole held at its reprojected latents,
    bit for bit; the partly covered and unseen cells are generated. carry="condition" on the same world state keeps
    none of them."""
    frames, poses = clip(3, seed=3)
    assert world.carry == "sharp"  # the default for a reproject generator
    seen = []
    forward = world.generator.forward
    monkeypatch.setattr(world.generator, "forward", lambda *a, cond=None, **kw: seen.append(cond) or forward(*a, cond=cond, **kw))
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    sampled, _ = sampled_block(world, monkeypatch, snap, poses[:, 1])  # (N, F, C, h, w); undoes the spy too
    cond = seen[0]
    covered = (cond[:, :, -1:] >= 1.0).expand_as(sampled)  # (N, F, C, h, w)
    assert 0 < int(covered.sum()) < covered.numel()  # the pan leaves some cells unseen
    assert torch.equal(sampled[covered], cond[:, :, :-1][covered])
    assert not torch.allclose(sampled[~covered], cond[:, :, :-1][~covered], atol=1e-3)
    conditioned, _ = sampled_block(world, monkeypatch, snap, poses[:, 1], carry="condition")
    assert not torch.allclose(conditioned[covered], cond[:, :, :-1][covered], atol=1e-3)


def step_counting_decodes(world, monkeypatch, poses) -> tuple[np.ndarray, int]:
    """One step of ``world`` at ``poses``: (the frames shown (N, F, H, W, 3) uint8, how many frames it decoded)."""
    decoded_frames = []
    decode_raw = world.autoencoder.decode_raw
    monkeypatch.setattr(world.autoencoder, "decode_raw", lambda z: decoded_frames.append(len(z)) or decode_raw(z))
    shown = world.step(poses, ["a", "b"])
    monkeypatch.undo()
    return shown, sum(decoded_frames)


def test_sharp_shows_the_composite_and_keeps_its_last_frame(world, monkeypatch):
    """carry="sharp" shows the composite memory takes: every pixel the last shown frame saw is that frame's
    reprojection exactly (no autoencoder round trip), the rest the decoded sampled block; memory takes that composite
    encoded again; the next geometric input is the shown last frame; one decode per frame (for the composite), none for
    showing."""
    from magworld.model.reproject import reproject

    frames, poses = clip(3, seed=5)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    last, last_pose = world._last_frame.clone(), world._last_pose.clone()
    sampled, kept = sampled_block(world, monkeypatch, snap, poses[:, 1])  # before and after the composite
    world.restore(snap)
    shown, decoded_frames = step_counting_decodes(world, monkeypatch, poses[:, 1])
    assert decoded_frames == shown.shape[0] * shown.shape[1]
    ae, target = world.autoencoder, torch.from_numpy(poses[:, 1]).flatten(0, 1)  # (N*F, 3)
    warped, valid = reproject(last.repeat_interleave(3, 0), last_pose.repeat_interleave(3, 0), target)
    with torch.no_grad():
        composite = torch.where(valid > 0, warped, ae.decode_float(sampled.flatten(0, 1)))  # (N*F, 3, H, W)
        torch.testing.assert_close(kept, ae.encode_float(composite).unflatten(0, (2, 3)), atol=1e-5, rtol=0)
        expected = ae.to_uint8(composite)
    assert not torch.allclose(kept, sampled, atol=1e-3)
    expected = expected.unflatten(0, (2, 3)).permute(0, 1, 3, 4, 2).numpy().astype(int)
    assert 0 < float(valid.mean()) < 1
    assert np.abs(shown.astype(int) - expected).max() <= 1  # batch-size rounding of the decoder's conv at most
    seen = valid[:, 0].bool().unflatten(0, (2, 3)).numpy()  # (N, F, H, W)
    carried = ae.to_uint8(warped).unflatten(0, (2, 3)).permute(0, 1, 3, 4, 2).numpy()
    assert np.array_equal(shown[seen], carried[seen])  # carried pixels reach the screen untouched
    assert np.array_equal(shown[:, -1], ae.to_uint8(world._last_frame).permute(0, 2, 3, 1).numpy())


def test_carry_modes_are_checked_against_the_generator():
    from magworld.model.pipeline import resolve_carry

    assert resolve_carry(None, reproject=True) == "sharp"
    assert resolve_carry(None, reproject=False) is None
    assert resolve_carry("condition", reproject=True) == "condition"
    with pytest.raises(ValueError, match="unknown carry mode 'glue'"):
        resolve_carry("glue", reproject=True)
    with pytest.raises(ValueError, match="trained without it"):
        resolve_carry("sharp", reproject=False)
    for removed in ("paste", "pixels"):  # ablations removed; their numbers are in docs/notes/world.md
        with pytest.raises(ValueError, match="unknown carry mode"):
            resolve_carry(removed, reproject=True)


def test_training_rollout_is_the_world_with_gradients_through_one_step(world):
    """Self-forcing and DMD roll out through the world's own generate (RecordingWorld over a ``frozen=False`` world):
    at the last sampler step it gives the blocks the env's world gives; the blocks asked for keep the graph of their
    step down to the generator's weights, the others and the cache carry none."""
    from magworld.protocol import play_blocks
    from magworld.train.common import RecordingWorld

    frames, poses = clip(4, seed=4)
    prompts = [["a"] * 4, ["b"] * 4]
    steps = world.sampler.cfg.steps
    trained = WorldModel(world.generator, world.memory_model, world.autoencoder, world.text_encoder, memory="mag",
                         device="cpu", frozen=False)
    world.generator.requires_grad_(True)
    try:
        rollout = RecordingWorld(trained, exits=[steps - 1] * 4, grad_blocks=[2], seeds=[0, 1])
        play_blocks(rollout, frames, poses, ["a", "b"], prompts, 1)
        assert [x.requires_grad for x in rollout.latents] == [False, True, False]
        rollout.latents[1].square().sum().backward()
        assert world.generator.net.patch_embed.weight.grad.abs().sum() > 0
        assert not any(k.requires_grad for k in trained.cache.keys if k is not None)
    finally:
        world.generator.requires_grad_(False).zero_grad(set_to_none=True)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"], seeds=[0, 1])
    for b in range(1, 4):
        expected = world.generate(poses[:, b], ["a", "b"]).latents
        torch.testing.assert_close(rollout.latents[b - 1].detach(), expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="frozen=False"):
        world.generate(poses[:, 1], ["a", "b"], grad=True)
