"""The adversarial term of stage ``dmd`` (docs/notes/adversarial.md): the judge's losses and R1, where the generator's
adversarial gradient may act (invented pixels only), the stage with and without it on micro models, and the detail
ratio its evals log."""

import math

import numpy as np
import pytest
import torch
from einops import rearrange
from test_dmd import dmd_config, micro, record_models  # noqa: F401  (micro: the module-scoped fixture)

from stage_testing import metrics_lines, spy_steps
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.checkpoint import load_checkpoint
from magworld.model.discriminator import (Discriminator, DiscriminatorConfig, discriminator_loss, generator_loss,
                                          invented_patches, pair_accuracy, r1_penalty)
from magworld.model.generator import GeneratorConfig
from magworld.model.reproject import keep_seen_pixels, warp_block
from magworld.train import dmd
from magworld.metrics import detail
from magworld.world.camera import invented_mask
from test_dmd import MICRO


def _disc(**kw) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator(DiscriminatorConfig(**{"channels": [8, 16], **kw}))


def test_losses_have_the_expected_signs():
    high, low = torch.full((4, 2, 2), 2.0), torch.full((4, 2, 2), -2.0)
    assert discriminator_loss(high, low) < discriminator_loss(low, high)  # judge right: lower loss
    assert generator_loss(low, high) < generator_loss(high, low)  # fooled judge: lower generator loss
    assert pair_accuracy(high, low) == 1.0 and pair_accuracy(low, high) == 0.0


def test_the_judge_learns_to_tell_real_from_fake_blocks():
    """A few steps on real blocks (noise: detail) vs fake ones (their blur: a smear) lower its loss and separate them."""
    disc = _disc(coverage=False)
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    real = torch.randn(8, 3, 3, 8, 8)
    fake = real.mean(dim=(-1, -2), keepdim=True).expand_as(real)
    first = None
    for _ in range(80):
        loss = discriminator_loss(disc(real), disc(fake))
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    assert pair_accuracy(disc(real), disc(fake)) == 1.0


def test_r1_is_zero_for_a_constant_judge_and_positive_otherwise():
    disc = _disc()
    real, cover = torch.randn(2, 3, 3, 8, 8), torch.rand(2, 3, 1, 8, 8)
    r1, logits = r1_penalty(disc, real, cover)
    assert float(r1.detach()) > 0 and logits.shape == (2, 2, 2)
    r1.backward()  # differentiable w.r.t. the judge's weights (not its biases: they do not change d logits / d input)
    assert all(m.weight.grad is not None and float(m.weight.grad.abs().sum()) > 0 for m in disc.net
               if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        for m in disc.net:
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()  # output = the last bias: constant in the input
    assert float(r1_penalty(disc, real, cover)[0].detach()) == 0.0


def test_adversarial_gradient_reaches_only_the_invented_pixels():
    """The generated block as a sharp world makes it (decoded, seen pixels put back, encoded) and judged: the gradient
    on the decoded frames is exactly zero where the last frame saw the view, nonzero where the world invented."""
    torch.manual_seed(0)
    ae = Autoencoder(AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4)).eval()
    last = torch.rand(1, 3, 32, 32) * 2 - 1
    warp = warp_block(last, torch.tensor([[0.0, 0.0, 60.0]]), torch.tensor([[[10.0, 0.0, 60.0]] * 3]))
    assert 0 < float(warp.valid.mean()) < 1
    decoded = {}
    decode = ae.decode_float

    def spied(z):
        decoded["made"] = decode(z)
        decoded["made"].retain_grad()
        return decoded["made"]

    ae.decode_float = spied
    x0 = torch.randn(1, 3, 16, 4, 4, requires_grad=True)
    latents, _ = keep_seen_pixels(ae, x0, warp)
    ae.decode_float = decode
    disc = _disc()
    blocks, cover = dmd.judged(disc, dmd.decoded(ae, latents), warp.valid)
    logits = disc(blocks, cover)
    generator_loss(torch.zeros_like(logits), logits).backward()
    grad = rearrange(decoded["made"].grad, "(n f) c h w -> n f c h w", f=3).abs().sum(2, keepdim=True)
    assert float(grad[warp.valid > 0].abs().max()) == 0.0
    assert float(grad[warp.valid == 0].abs().max()) > 0.0
    assert x0.grad is not None and float(x0.grad.abs().sum()) > 0


def test_gan_weight_zero_is_the_dmd_step_and_the_gan_term_leaves_the_dmd_terms_alone(micro, tmp_path, monkeypatch):
    """gan_weight 0: no judge, loss = critic + DMD, the checkpoint holds what it held. gan_weight > 0 on the same seeds:
    the same batches (the term draws nothing), the same critic and DMD losses on step 1, one more parameter group."""
    seen = spy_steps(monkeypatch, dmd, record_models)
    dmd.train(dmd_config(micro, tmp_path / "plain", 1))
    dmd.train(dmd_config(micro, tmp_path / "gan", 1, gan_weight=0.5,
                         discriminator=DiscriminatorConfig(channels=[8, 16])))
    plain, gan = ([x for x in metrics_lines(tmp_path / k) if "loss" in x][0] for k in ("plain", "gan"))
    assert plain["loss"] == pytest.approx(plain["critic_loss"] + plain["dmd_loss"], rel=1e-6)
    assert "d_loss" not in plain and "grad_norm_discriminator" not in plain
    assert (gan["critic_loss"], gan["dmd_loss"]) == (plain["critic_loss"], plain["dmd_loss"])
    assert gan["loss"] > plain["loss"] and math.isfinite(gan["g_adv"]) and gan["grad_norm_discriminator"] > 0
    assert seen[0]["batch"].exits == seen[1]["batch"].exits and seen[0]["batch"].prompts == seen[1]["batch"].prompts
    keys = {k.split(".")[0] for k in load_checkpoint(tmp_path / "plain" / "dmd.safetensors", "dmd")[0]}
    assert keys == {"generator", "ema", "critic"}
    keys = {k.split(".")[0] for k in load_checkpoint(tmp_path / "gan" / "dmd.safetensors", "dmd")[0]}
    assert keys == {"generator", "ema", "critic", "discriminator"}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gan_only_step_needs_no_teacher(micro, tmp_path, precision):
    """dmd_weight 0: no teacher file is read (the path does not exist), no critic; one step in fp32 and bf16 logs the
    judge's losses, pair accuracy, R1, R2 and gradient norms, and the eval logs the detail ratio."""
    disc = DiscriminatorConfig(channels=[8, 16])
    cfg = dmd_config(micro, tmp_path, 1, dmd_weight=0.0, gan_weight=1.0, teacher=str(tmp_path / "none.safetensors"),
                     invented_threshold=0.0,  # every patch: a micro window may invent too little for a 0.5 cell
                     model=GeneratorConfig(transformer=MICRO, reproject=True), discriminator=disc,
                     run={"precision": precision, "eval_every": 1})
    metrics = dmd.train(cfg)
    line = [x for x in metrics_lines(tmp_path) if "loss" in x][0]
    for key in ("loss", "d_loss", "g_adv", "r1", "r2", "d_acc_pair", "grad_norm_generator", "grad_norm_discriminator"):
        assert math.isfinite(line[key]), key
    assert "critic_loss" not in line and "grad_norm_critic" not in line
    assert line["grad_norm_generator"] > 0
    assert math.isfinite(metrics["psnr_mag"]) and metrics["detail_mag"] > 0
    keys = {k.split(".")[0] for k in load_checkpoint(tmp_path / "dmd.safetensors", "dmd")[0]}
    assert keys == {"generator", "ema", "discriminator"}


def test_short_rollouts_keep_long_held_out_clips(micro, tmp_path, monkeypatch):
    """eval_blocks: 3-block training rollouts, 5-block held-out clips (4 given, 1 generated); eval_blocks 0 is blocks,
    so 4 given blocks of a 3-block clip are refused."""
    frames = []
    heldout = dmd.heldout_clips
    monkeypatch.setattr(dmd, "heldout_clips", lambda data, count, n: frames.append(n) or heldout(data, count, n))
    cfg = dmd_config(micro, tmp_path, 1, dmd_weight=0.0, gan_weight=1.0, teacher=str(tmp_path / "none.safetensors"),
                     blocks=3, eval_blocks=5, eval_context_blocks=4, invented_threshold=0.0,
                     model=GeneratorConfig(transformer=MICRO), discriminator=DiscriminatorConfig(channels=[8, 16]),
                     run={"eval_every": 1})
    metrics = dmd.train(cfg)
    assert frames == [5 * MICRO.block_frames] and math.isfinite(metrics["psnr_mag"])
    with pytest.raises(ValueError, match="eval_context_blocks"):
        dmd.DMDStageConfig(blocks=3, eval_context_blocks=4)


def test_clip_judge_reads_the_window_s_blocks_together(micro, tmp_path):
    """discriminator.frames = 2 blocks: one judged sample per 2-block window (the second block beside the first); a
    frame count that does not tile the window is refused before anything trains."""
    bf = MICRO.block_frames
    kw = dict(dmd_weight=0.0, gan_weight=1.0, teacher=str(tmp_path / "none.safetensors"), invented_threshold=0.0,
              window_blocks=2, model=GeneratorConfig(transformer=MICRO), run={"eval_every": 100})
    with pytest.raises(SystemExit, match="tile"):
        dmd.build_parts(dmd_config(micro, tmp_path, 1, discriminator=DiscriminatorConfig(channels=[8, 16], frames=3 * bf),
                                   **kw), torch.device("cpu"))
    dmd.train(dmd_config(micro, tmp_path, 1, discriminator=DiscriminatorConfig(channels=[8, 16], frames=2 * bf), **kw))
    line = [x for x in metrics_lines(tmp_path) if "loss" in x][0]
    assert math.isfinite(line["d_loss"]) and line["grad_norm_generator"] > 0
    judge = {k: v for k, v in load_checkpoint(tmp_path / "dmd.safetensors", "dmd")[0].items() if "discriminator" in k}
    assert judge["discriminator.net.0.weight"].shape[1] == 2 * bf * 4  # 2 blocks of RGB + coverage


def test_config_needs_a_term_that_trains_the_generator():
    with pytest.raises(ValueError, match="both 0"):
        dmd.DMDStageConfig(dmd_weight=0.0, gan_weight=0.0)
    with pytest.raises(ValueError, match="r2_weight"):
        dmd.DMDStageConfig(gan_weight=1.0, r2_weight=-1.0)


def test_invented_mask_and_detail_ratio():
    """Holding still, every pixel of blocks >= 1 was seen; a pan leaves a strip. Detail of a frame against itself is its
    own, a flat frame has none."""
    still = torch.zeros(1, 6, 3)
    still[..., 2] = 60.0
    pan = still.clone()
    pan[0, :, 0] = torch.arange(6) * 10.0
    assert invented_mask(still, 3, 16)[:, :3].all() and not invented_mask(still, 3, 16)[:, 3:].any()
    strip = invented_mask(pan, 3, 16)[:, 3:]
    assert 0 < float(strip.mean()) < 0.9
    frames = torch.randint(0, 255, (2, 16, 16, 3), dtype=torch.uint8).numpy()
    where = np.ones((2, 16, 16), dtype=bool)
    assert detail(frames, where) > 0 and detail(np.full_like(frames, 7), where) == 0.0


def test_relativistic_losses_pair_real_and_generated_patches():
    """RpGAN on the hand example's left column: the judge's loss is mean softplus(fake - real) over invented patches,
    the generator's mean softplus(real - fake) with no gradient into the real logits; mismatched shapes are refused."""
    real = torch.tensor([[[1.0, -5.0], [-2.0, 7.0]]], requires_grad=True)
    fake = torch.tensor([[[0.5, 9.0], [3.0, -9.0]]], requires_grad=True)
    w = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    sp = torch.nn.functional.softplus
    d = discriminator_loss(real, fake, w)
    assert float(d.detach()) == pytest.approx(float((sp(torch.tensor(0.5 - 1.0)) + sp(torch.tensor(3.0 + 2.0))) / 2))
    assert float(discriminator_loss(real, fake, torch.zeros_like(w)).detach()) == 0.0  # no judged patch: no loss
    g = generator_loss(real, fake, w)
    assert float(g.detach()) == pytest.approx(float((sp(torch.tensor(1.0 - 0.5)) + sp(torch.tensor(-2.0 - 3.0))) / 2))
    g.backward()
    assert real.grad is None and fake.grad[0, :, 1].abs().sum() == 0 and fake.grad[0, :, 0].abs().min() > 0
    assert float(pair_accuracy(real.detach(), fake.detach(), w)) == 0.5  # 1 > 0.5 right, -2 < 3 wrong
    for loss in (discriminator_loss, generator_loss):
        with pytest.raises(ValueError, match="same poses"):
            loss(real, fake[:, :1])


def test_relativistic_stage_step_logs_pair_accuracy_and_r2(micro, tmp_path):
    disc = DiscriminatorConfig(channels=[8, 16])
    dmd.train(dmd_config(micro, tmp_path, 1, dmd_weight=0.0, gan_weight=1.0, r2_weight=1.0, memory_weight=1.0,
                         discriminator=disc,
                         model=GeneratorConfig(transformer=MICRO, reproject=True),
                         invented_threshold=0.0))
    line = [x for x in metrics_lines(tmp_path) if "loss" in x][0]
    for key in ("d_loss", "g_adv", "r1", "r2", "d_acc_pair", "memory_l1", "remembered_pixels", "grad_norm_generator",
                "grad_norm_discriminator"):
        assert math.isfinite(line[key]) and (key != "r2" or line[key] > 0), key
    assert line["grad_norm_generator"] > 0


def test_generator_start_lets_the_judge_warm_up_alone(micro, tmp_path):
    disc = DiscriminatorConfig(channels=[8, 16])
    dmd.train(dmd_config(micro, tmp_path, 2, dmd_weight=0.0, gan_weight=1.0, generator_start=1, discriminator=disc,
                         model=GeneratorConfig(transformer=MICRO, reproject=True), invented_threshold=0.0))
    lines = [x for x in metrics_lines(tmp_path) if "loss" in x]
    assert [x["generator_step"] for x in lines] == [False, True]
    assert "grad_norm_generator" not in lines[0] and "g_adv" not in lines[0]
    assert lines[1]["grad_norm_generator"] > 0 and all(x["grad_norm_discriminator"] > 0 for x in lines)


def test_invented_patch_weights_match_a_hand_computation():
    """A 4x4 block whose left half was invented in every frame, judged on a 2x2 logit grid: the left column's patches
    weigh 1, the right column's 0 (the losses on these weights: the relativistic test's hand example)."""
    carried = torch.zeros(1, 3, 1, 4, 4)
    carried[..., 2:] = 1.0  # right half carried
    carried[:, 0, :, :2, 1] = 1.0  # one frame also carried a quarter of the left-top cell: still 11/12 invented
    real = torch.tensor([[[1.0, -5.0], [-2.0, 7.0]]])
    w = invented_patches(1 - carried, real, 0.5)
    assert w.tolist() == [[[1.0, 0.0], [1.0, 0.0]]]
    assert invented_patches(1 - carried, real, 0.0).tolist() == [[[1.0, 1.0], [1.0, 1.0]]]  # threshold 0: every patch


def test_flow_weight_zero_leaves_the_step_as_it_was(micro, tmp_path):
    """flow_weight 0 logs no flow term; flow_weight > 0 on the same seeds: the same adversarial losses (its draws come
    from their own stream), and the loss adds exactly flow_weight x flow, which reaches the generator."""
    disc = DiscriminatorConfig(channels=[8, 16])
    common = dict(dmd_weight=0.0, gan_weight=1.0, discriminator=disc, invented_threshold=0.0,  # micro: every patch
                  model=GeneratorConfig(transformer=MICRO, reproject=True))
    dmd.train(dmd_config(micro, tmp_path / "plain", 1, **common))
    dmd.train(dmd_config(micro, tmp_path / "flow", 1, flow_weight=0.5, **common))
    plain, flow = ([x for x in metrics_lines(tmp_path / k) if "loss" in x][0] for k in ("plain", "flow"))
    assert "flow" not in plain and math.isfinite(flow["flow"]) and flow["flow"] > 0
    for key in ("d_loss", "g_adv", "r1", "d_acc_pair"):
        assert flow[key] == pytest.approx(plain[key], rel=1e-6, abs=1e-9), key
    assert flow["loss"] == pytest.approx(plain["loss"] + 0.5 * flow["flow"], rel=1e-5)
    assert flow["grad_norm_generator"] != pytest.approx(plain["grad_norm_generator"])


def test_remembered_pixels_match_the_geometry():
    """Given blocks at 0° (the sink) and 60°, then 90°, 120° and back to 60°: block 4 (60°) sees the sink and block 3
    (120°) directly, so its whole view is remembered from block 1; block 3 (120°) shares no ray with block 1."""
    from magworld.train.common import remembered_pixels
    from magworld.world.camera import visible_mask

    yaw = [0] * 3 + [60] * 3 + [90] * 3 + [120] * 3 + [60] * 3
    poses = np.array([[[y, 0.0, 60.0] for y in yaw]], dtype=np.float32)
    found = remembered_pixels(poses, 6, 9, 6, 16)
    assert found[0, :3].sum() == 0 and found[0, 3:].all()
    assert remembered_pixels(poses, 3, 9, 6, 16).sum() == 0  # only the sink given: it is seen directly
    tilted = poses.copy()
    tilted[0, 12:, 0] = 75.0  # half back: the part block 1 showed, minus what the sink and block 3 show
    part = remembered_pixels(tilted, 6, 12, 3, 16)[0, 0]
    seen = visible_mask(tilted[0, 12], tilted[0, 3:6], 16, 16) & ~visible_mask(tilted[0, 12], tilted[0, [0, 1, 2, 9, 10, 11]], 16, 16)
    assert np.array_equal(part, seen) and 0 < part.sum() < 256


def test_memory_anchor_is_the_l1_error_on_remembered_pixels():
    from types import SimpleNamespace

    ae = Autoencoder(AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4)).eval()
    yaw = [0] * 3 + [60] * 3 + [90] * 3 + [120] * 3 + [60] * 3
    poses = np.array([[[[y, 0.0, 60.0] for y in yaw[i:i + 3]] for i in range(0, 15, 3)]], dtype=np.float32)  # (1, 5, 3, 3)
    truth = np.random.default_rng(0).integers(0, 256, (1, 5, 3, 32, 32, 3), dtype=np.uint8)
    window = torch.randn(1, 6, 16, 4, 4, requires_grad=True)  # blocks 3 and 4 (decoded: 32 x 32)
    b = SimpleNamespace(truth=truth, poses=poses, window=3, given=2)
    loss, pixels = dmd.memory_anchor(b, dmd.decoded(ae, window), 2)
    with torch.no_grad():
        made = ae.decode_unclamped(window[0])[3:]  # block 4: all remembered
    want = (made - torch.from_numpy(truth[0, 4]).permute(0, 3, 1, 2).float() / 127.5 + 1).abs().mean()
    assert pixels == 3 * 32 * 32 and float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    loss.backward()
    assert window.grad[0, :3].abs().sum() == 0 and window.grad[0, 3:].abs().sum() > 0  # block 3 remembers nothing
    zero, none = dmd.memory_anchor(SimpleNamespace(truth=truth, poses=poses, window=3, given=1), dmd.decoded(ae, window), 2)
    assert none == 0 and float(zero) == 0.0
