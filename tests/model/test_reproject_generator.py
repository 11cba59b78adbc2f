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
from magworld.train.generator import training_condition

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
    real last frame the world was shown, after a generated block that block's decoded last frame (carry="pixels"; a
    sharp world reprojects the composite it showed instead, test_sharp_shows_the_composite_and_keeps_its_last_frame)."""
    frames, poses = clip(4)
    world.carry = "pixels"
    seen = []
    forward = world.generator.forward

    def spy(*args, cond=None, **kw):
        seen.append(cond.clone())
        return forward(*args, cond=cond, **kw)

    monkeypatch.setattr(world.generator, "forward", spy)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    world.memorize(frames[:, 1], poses[:, 1])
    made = world.generate_latents(poses[:, 2], ["a", "b"])  # block 2 from the memorized block 1
    calls = len(seen)
    world.generate_latents(poses[:, 3], ["a", "b"])  # block 3 from the generated block 2
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
    first = world.generate_latents(poses[:, 1], ["a", "b"])
    world.restore(snap)
    torch.testing.assert_close(world.generate_latents(poses[:, 1], ["a", "b"]), first)
    world.restore(snap)
    world._last_frame = world._last_frame.flip(-1)  # another picture at the same pose
    assert not torch.allclose(world.generate_latents(poses[:, 1], ["a", "b"]), first, atol=1e-4)


def test_cond_is_required_exactly_for_reproject_generators():
    tc = micro_config()
    x = torch.zeros(1, 3, tc.latent_channels, 4, 4)
    t, pose, text = torch.zeros(1, 3), torch.zeros(1, 3, 3), torch.zeros(1, 1, 16)
    with pytest.raises(ValueError, match="reproject=True"):
        Generator(GeneratorConfig(transformer=tc, reproject=True))(x, t, pose, text)
    with pytest.raises(ValueError, match="reproject=False"):
        Generator(GeneratorConfig(transformer=tc))(x, t, pose, text, cond=torch.zeros(1, 3, 5, 4, 4))


def test_carry_skip_passes_the_reprojected_latents_through():
    tc = micro_config()
    torch.manual_seed(0)
    plain = perturbed(Generator(GeneratorConfig(transformer=tc, reproject=True)), 3)
    skip = Generator(GeneratorConfig(transformer=tc, reproject=True, carry_skip=True))
    skip.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(2, 3, tc.latent_channels, 4, 4, generator=g), torch.full((2, 3), 0.6)
    pose, text = torch.zeros(2, 3, 3), torch.zeros(2, 1, 16)
    cond = torch.cat([torch.randn(2, 3, tc.latent_channels, 4, 4, generator=g), torch.rand(2, 3, 1, 4, 4, generator=g)], 2)
    x0_plain = x_t - 0.6 * plain(x_t, t, pose, text, cond=cond).prediction
    x0_skip = x_t - 0.6 * skip(x_t, t, pose, text, cond=cond).prediction
    torch.testing.assert_close(x0_skip, x0_plain + cond[:, :, -1:] * cond[:, :, :-1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="needs reproject=True"):
        GeneratorConfig(transformer=tc, carry_skip=True)


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
    from magworld.train.generator import generator_loss

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


@pytest.mark.parametrize("carry, decodes", [("paste", 1), ("pixels", 2)])
def test_step_frames_are_the_decoded_latents_with_the_kept_last_frame(world, monkeypatch, carry, decodes):
    """A reproject world decodes its block's last frame once (kept as the next geometric input) and shows it: the
    frames equal the autoencoder's decode of the block's latents, the kept frame is the shown last frame, and a
    step decodes each frame once for showing (``pixels`` once more, for the composite it re-encodes)."""
    frames, poses = clip(3, seed=2)
    world.carry = carry
    try:
        world.start(frames[:, 0], poses[:, 0], ["a", "b"])
        snap = world.snapshot()
        latents = world.generate_latents(poses[:, 1], ["a", "b"])  # (N, F, C, h, w)
        world.restore(snap)
        shown, decoded_frames = step_counting_decodes(world, monkeypatch, poses[:, 1])
    finally:
        world.carry = "sharp"
    assert decoded_frames == decodes * shown.shape[0] * shown.shape[1]
    with torch.inference_mode():
        decoded = world.autoencoder.decode(latents.flatten(0, 1)).unflatten(0, latents.shape[:2])
    expected = decoded.permute(0, 1, 3, 4, 2).numpy().astype(int)
    assert np.abs(shown.astype(int) - expected).max() <= 1  # batch-size rounding of the conv at most
    assert np.array_equal(shown[:, -1], world.autoencoder.to_uint8(world._last_frame).permute(0, 2, 3, 1).numpy())


def test_paste_keeps_the_cells_the_last_frame_covers_and_generates_the_rest(world, monkeypatch):
    """carry="paste": every latent cell the last shown frame covers whole comes out as its reprojected latents, bit for
    bit; the partly covered and unseen cells are generated (they are not the reprojection). carry="condition" on the
    same world state keeps none of them."""
    frames, poses = clip(3, seed=3)
    assert world.carry == "sharp"  # the default for a reproject generator
    seen = []
    forward = world.generator.forward
    monkeypatch.setattr(world.generator, "forward", lambda *a, cond=None, **kw: seen.append(cond) or forward(*a, cond=cond, **kw))
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    pasted = latents_with_carry(world, "paste", snap, poses[:, 1])  # (N, F, C, h, w)
    cond = seen[0]
    covered = (cond[:, :, -1:] >= 1.0).expand_as(pasted)  # (N, F, C, h, w)
    assert 0 < int(covered.sum()) < covered.numel()  # the pan leaves some cells unseen
    assert torch.equal(pasted[covered], cond[:, :, :-1][covered])
    assert not torch.allclose(pasted[~covered], cond[:, :, :-1][~covered], atol=1e-3)
    conditioned = latents_with_carry(world, "condition", snap, poses[:, 1])
    assert not torch.allclose(conditioned[covered], cond[:, :, :-1][covered], atol=1e-3)


def step_counting_decodes(world, monkeypatch, poses) -> tuple[np.ndarray, int]:
    """One step of ``world`` at ``poses``: (the frames shown (N, F, H, W, 3) uint8, how many frames it decoded)."""
    decoded_frames = []
    decode_raw = world.autoencoder.decode_raw
    monkeypatch.setattr(world.autoencoder, "decode_raw", lambda z: decoded_frames.append(len(z)) or decode_raw(z))
    shown = world.step(poses, ["a", "b"])
    monkeypatch.undo()
    return shown, sum(decoded_frames)


def latents_with_carry(world, carry: str, snap, poses) -> torch.Tensor:
    """The block ``world`` generates from ``snap`` under ``carry`` (the fixture's default, sharp, restored after)."""
    world.restore(snap)
    world.carry = carry
    try:
        return world.generate_latents(poses, ["a", "b"])
    finally:
        world.carry = "sharp"


def test_pixels_puts_back_what_the_last_frame_saw_over_the_pasted_block(world):
    """carry="pixels" samples as paste does, then re-encodes the decoded block with every pixel the last shown frame saw
    replaced by that frame's reprojection: from the same state its block is exactly that composite of the paste
    block (the seen pixels taken from the last frame shown, at the new poses)."""
    from magworld.model.reproject import reproject

    frames, poses = clip(3, seed=5)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    last, last_pose = world._last_frame.clone(), world._last_pose.clone()
    kept = latents_with_carry(world, "pixels", snap, poses[:, 1])  # (N, F, C, h, w)
    assert torch.equal(kept, latents_with_carry(world, "sharp", snap, poses[:, 1]))  # sharp remembers the same block
    pasted = latents_with_carry(world, "paste", snap, poses[:, 1])
    ae, target = world.autoencoder, torch.from_numpy(poses[:, 1]).flatten(0, 1)  # (N*F, 3)
    warped, valid = reproject(last.repeat_interleave(3, 0), last_pose.repeat_interleave(3, 0), target)
    with torch.no_grad():
        made = ae.decode_float(pasted.flatten(0, 1))
        expected = ae.encode_float(torch.where(valid > 0, warped, made)).unflatten(0, (2, 3))
    assert 0 < float(valid.mean()) < 1
    torch.testing.assert_close(kept, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(kept, pasted, atol=1e-3)


def test_sharp_shows_the_composite_and_keeps_its_last_frame(world, monkeypatch):
    """carry="sharp" shows the composite pixels remembers: every pixel the last shown frame saw is that frame's
    reprojection exactly (no autoencoder round trip), the rest the decoded block; the next geometric input is the shown
    last frame; one decode per frame (for the composite), none for showing."""
    from magworld.model.reproject import reproject

    frames, poses = clip(3, seed=5)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"])
    snap = world.snapshot()
    last, last_pose = world._last_frame.clone(), world._last_pose.clone()
    pasted = latents_with_carry(world, "paste", snap, poses[:, 1])  # what sharp samples before the composite
    world.restore(snap)
    shown, decoded_frames = step_counting_decodes(world, monkeypatch, poses[:, 1])
    assert decoded_frames == shown.shape[0] * shown.shape[1]
    ae, target = world.autoencoder, torch.from_numpy(poses[:, 1]).flatten(0, 1)  # (N*F, 3)
    warped, valid = reproject(last.repeat_interleave(3, 0), last_pose.repeat_interleave(3, 0), target)
    with torch.no_grad():
        expected = ae.to_uint8(torch.where(valid > 0, warped, ae.decode_float(pasted.flatten(0, 1))))  # (N*F, 3, H, W)
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
        resolve_carry("paste", reproject=False)


def test_paste_training_gives_the_covered_cells_and_takes_no_loss_from_them():
    """generator_loss(paste=True) trains what a carry="paste" world samples: the last block's true latents under the
    covered cells do not change the loss (the world keeps the reprojection there), the reprojected latents there do
    (they are the network's input); without paste the true latents there count."""
    from magworld.train.generator import generator_loss

    gen, mem, latents, pose, text, reprojected = loss_setup(6, 2)
    coverage = torch.ones(2, 6, 1, 4, 4)
    coverage[..., :2] = 0.5  # the left half partly seen: generated
    cond = torch.cat([reprojected, coverage], 2)
    covered_last = torch.zeros_like(latents, dtype=torch.bool)
    covered_last[:, 3:, :, :, 2:] = True  # the last block's covered cells

    def loss(lat, c, paste):
        with torch.no_grad():
            return float(generator_loss(gen, mem, lat, pose, text, text, "mag", 0, torch.Generator().manual_seed(7),
                                        cond=c, paste=paste)["loss"])

    moved = torch.where(covered_last, latents + 3.0, latents)
    assert loss(moved, cond, True) == pytest.approx(loss(latents, cond, True), rel=1e-6)
    assert loss(moved, cond, False) != pytest.approx(loss(latents, cond, False), rel=1e-3)
    other = cond.clone()
    other[:, 3:, :-1, :, 2:] += 3.0
    assert loss(latents, other, True) != pytest.approx(loss(latents, cond, True), rel=1e-3)


def test_pixel_loss_decodes_the_x0_the_world_would_show(monkeypatch):
    """pixel_weight: the decoded x0 prediction against the decoded true latents. A network whose x0 prediction is the
    truth scores 0 without paste; with paste the kept cells hold the reprojection (what the world shows), so the term
    is the decoded error of exactly that block; total = flow + p * pixel; a missing autoencoder is an error."""
    from magworld.model.transformer import Output
    from magworld.train.generator import decoded_error, generator_loss

    gen, mem, latents, pose, text, reprojected = loss_setup(8, 3)
    ae = Autoencoder(AutoencoderConfig(latent_channels=gen.cfg.transformer.latent_channels, channels=[8, 8], groups=4))
    coverage = torch.ones(2, 6, 1, 4, 4)
    coverage[..., :2] = 0.5
    cond = torch.cat([reprojected, coverage], 2)
    forward = gen.forward

    def truthful(x_t, t, *args, **kw):  # the velocity whose x0 prediction is the true latents
        out = forward(x_t, t, *args, **kw)
        return Output((x_t - latents) / t.view(*t.shape, 1, 1, 1), out.keys, out.values)

    def parts(paste, weight=2.0, autoencoder=ae):
        with torch.no_grad():
            return generator_loss(gen, mem, latents, pose, text, text, "mag", 0, torch.Generator().manual_seed(7),
                                  cond=cond, paste=paste, pixel_weight=weight, autoencoder=autoencoder)

    real = parts(True)
    assert float(real["loss"]) == pytest.approx(float(real["flow"] + 2.0 * real["pixel"]), rel=1e-6)
    assert "pixel" not in parts(True, weight=0.0)
    with pytest.raises(ValueError, match="pass the"):
        parts(True, autoencoder=None)
    monkeypatch.setattr(gen, "forward", truthful)
    assert float(parts(False)["pixel"]) < 1e-10
    shown = torch.where(coverage >= 1, reprojected, latents)  # the kept cells: the reprojection
    with torch.no_grad():
        expected = decoded_error(ae, shown[:, 3:], latents[:, 3:])
    assert float(expected) > 1e-3
    assert float(parts(True)["pixel"]) == pytest.approx(float(expected), rel=1e-5)


def test_dmd_self_forced_rollout_samples_what_the_world_samples(world):
    """DMD trains on its own rollout of the generator; run to the last sampler step it must give the blocks the
    world model gives (paste included), or the student is trained on a world it never shows."""
    from magworld.protocol import play_blocks
    from magworld.train.dmd import SelfForcedRollout

    frames, poses = clip(4, seed=4)
    prompts = [["a"] * 4, ["b"] * 4]
    world.seed = 0
    steps = world.sampler.cfg.steps
    rollout = SelfForcedRollout(world.generator, world.memory_model, world.autoencoder, world.text_encoder, "mag",
                                exits=[steps - 1] * 4, seeds=[0, 1])
    with torch.no_grad():
        play_blocks(rollout, frames, poses, ["a", "b"], prompts, 1)
    world.start(frames[:, 0], poses[:, 0], ["a", "b"], seeds=[0, 1])
    for b in range(1, 4):
        expected = world.generate_latents(poses[:, b], ["a", "b"])
        torch.testing.assert_close(rollout.latents[b - 1], expected, atol=1e-4, rtol=0)
