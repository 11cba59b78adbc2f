"""Stage ``dmd`` (MAG stage 2 as the paper trains it): long-video Self-Forcing DMD with the history term, and an
optional adversarial term (the step, the networks and the optimiser: docs/notes/code.md; runs: docs/notes/dmd.md,
docs/notes/adversarial.md).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from itertools import count
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from magworld.model.discriminator import (Discriminator, DiscriminatorConfig, discriminator_loss, generator_loss,
                                          invented_patches, pair_accuracy, r1_penalty)
from magworld.model.flow import add_noise, shift_time, velocity_target
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryModel
from magworld.model.pipeline import WorldModel, sha256
from magworld.model.teacher import Teacher, load_teacher
from magworld.model.text import TextConfig, make_text_encoder
from magworld.protocol import play_blocks

from .common import (RecordingWorld, as_blocks, bundled_generator_config, carried_truth, check_init, check_policies,
                     clip_prompts, draw_policy, evaluate_rollouts, frozen_autoencoder, frozen_memory, initial_generator,
                     motion_phrase, real_flow_loss, remembered_pixels)
from .data import WorldDataConfig, WorldStream, heldout_clips
from .loop import Placement, RunConfig, Stage, run_stage, setup_device
from .weights import export_generator


@dataclass
class DMDStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/dmd", batch_size=4, lr=2e-5, warmup_steps=0,
                                                             weight_decay=0.01, log_every=10, save_every=25))
    model: GeneratorConfig = field(default_factory=bundled_generator_config)  # the bundled generator's shape
    data: WorldDataConfig = field(default_factory=lambda: WorldDataConfig(leave_and_return_prob=0.8))
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: str = "bundled"  # or a path to an autoencoder .safetensors
    memory_model: str = "bundled"  # or a path to a memory-model .safetensors (frozen)
    teacher: str = "runs/teacher/teacher.safetensors"  # magworld train stage=teacher's export (frozen real score)
    init: str = "bundled"  # generator start: "bundled" / a generator .safetensors, "memory" or "random"
    blocks: int = 8  # N: blocks per self-forced rollout (ground-truth context + generated)
    context_blocks: int = 2  # ground-truth blocks before the rollout: drawn in 1..context_blocks
    history_drop: float = 0.3  # lambda: probability that a clip's generator prompt is empty (history term)
    policies: dict[str, float] = field(default_factory=lambda: {"mag": 0.6, "full": 0.2, "window": 0.2})
    generator_every: int = 5  # k: the generator learns every k-th step, the critic every step (dfake_gen_update_ratio;
    #   DMD runs: 5 beat 1; adversarial-only runs (no critic) use 1)
    critic_lr_scale: float = 0.2  # critic lr / generator lr (Self Forcing: 4e-7 / 2e-6)
    beta1: float = 0.0  # AdamW betas = (beta1, 0.999) for both networks (Self Forcing: 0.0)
    guidance: float = 0.0  # classifier-free guidance on the teacher's x0 (Self Forcing: 3.0); 0 = none
    min_t: float = 0.02  # DMD and critic times: uniform, shifted by the sampler's shift, clamped to [min_t, max_t]
    max_t: float = 0.98
    same_exit_step: bool = False  # one exit step for all blocks of a rollout (Self Forcing's default) or one per block
    ema_decay: float = 0.99
    ema_start: int = 200  # the EMA follows the generator exactly up to this step, then averages
    max_grad_norm: float = 10.0  # per network
    eval_clips: int = 8
    eval_context_blocks: int = 4  # held-out rollouts (EMA generator): this many ground-truth blocks, the rest generated
    eval_blocks: int = 0  # blocks per held-out clip; 0 = blocks (short training rollouts can keep long-clip evals)
    eval_policies: list[str] = field(default_factory=lambda: ["mag"])
    keep_every: int = 0  # also export the whole state (generator, EMA, critic) every this many steps
    dmd_weight: float = 1.0  # weight of the DMD term; 0: no teacher loaded, no critic trained
    gan_weight: float = 0.0  # weight of the adversarial term; 0: no discriminator (today's DMD stage)
    r1_weight: float = 1.0  # gamma: the judge's loss adds gamma / 2 x R1 on real blocks
    r2_weight: float = 1.0  # the judge's loss also adds r2_weight / 2 x R2 on generated blocks
    disc_lr_scale: float = 200.0  # judge lr / generator lr (two time-scale updates; runs 3-5: lr 5e-6, judge 1e-3)
    window_blocks: int = 2  # blocks in the scored window when no teacher is loaded (with one: its clip_blocks)
    generator_start: int = 0  # the generator learns from this step on (before: the critic / judge alone warm up)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    eval_detail: bool = True  # held-out evals also log detail_<policy> (invented pixels' detail ratio)
    invented_threshold: float = 0.5  # the judge's and the generator's adversarial losses average only the patches
    #   whose cell is at least this fraction invented (carried patches are alike in real and fake); 0 = every patch
    memory_weight: float = 0.0  # generator steps add memory_weight x the L1 error of the window's decoded frames on the
    #   pixels only memory can bring back from the given ground-truth blocks (common.remembered_pixels): remembered
    #   content has a right answer, invented content does not — the judge shapes the latter, this anchors the former
    flow_weight: float = 0.0  # generator steps add flow_weight x the flow-matching loss on the batch's real clips
    #   (stage generator's loss, every block read from the memory cache of the real ones): an anchor against drift

    def __post_init__(self) -> None:
        for name in ("history_drop", "min_t", "max_t", "ema_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.min_t < self.max_t:
            raise ValueError(f"need min_t < max_t, got {self.min_t} >= {self.max_t}")
        if self.generator_every < 1 or self.critic_lr_scale <= 0 or self.generator_start < 0:
            raise ValueError("generator_every must be >= 1, critic_lr_scale > 0 and generator_start >= 0")
        if not 1 <= self.context_blocks < self.blocks or not 1 <= self.eval_context_blocks < self.heldout_blocks:
            raise ValueError("need 1 <= context_blocks < blocks and 1 <= eval_context_blocks < eval_blocks (0: blocks)")
        check_policies(self.policies, self.model)
        for name in self.eval_policies:
            self.model.cache_config(name)
        weights = (self.dmd_weight, self.gan_weight, self.r1_weight, self.r2_weight, self.flow_weight, self.memory_weight)
        if min(weights) < 0 or self.disc_lr_scale <= 0 or not 0 <= self.invented_threshold <= 1:
            raise ValueError("dmd_weight, gan_weight, r1_weight, r2_weight, flow_weight and memory_weight must be >= 0, "
                             "disc_lr_scale > 0 and invented_threshold in [0, 1]")
        if self.dmd_weight == 0 and self.gan_weight == 0:
            raise ValueError("dmd_weight and gan_weight are both 0: nothing would train the generator")
        if self.dmd_weight == 0 and not 1 <= self.window_blocks <= self.blocks - self.context_blocks:
            raise ValueError(f"window_blocks must be in 1..blocks - context_blocks, got {self.window_blocks}")
        check_init(self.init)

    @property
    def heldout_blocks(self) -> int:
        """Blocks per held-out clip (``eval_blocks``, 0 = ``blocks``)."""
        return self.eval_blocks or self.blocks


class DMDModels(nn.Module):
    """What the DMD stage trains and checkpoints together: the generator, its EMA, the critic (fake score; None without
    the DMD term) and the discriminator (None without the adversarial term)."""

    def __init__(self, generator: Generator, critic: Teacher | None, discriminator: Discriminator | None = None) -> None:
        super().__init__()
        self.generator, self.critic = generator, critic
        self.ema = copy.deepcopy(generator).requires_grad_(False)
        self.discriminator = discriminator

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema <- decay * ema + (1 - decay) * generator (decay 0 copies)."""
        for e, p in zip(self.ema.parameters(), self.generator.parameters()):
            e.lerp_(p, 1.0 - decay)


class DMDBatch(NamedTuple):
    """One step's clip and every random choice of the step (the step is a function of the weights and this)."""

    truth: np.ndarray  # uint8 (N, B, F, H, W, 3) ground-truth blocks (only the given ones are read)
    poses: np.ndarray  # float32 (N, B, F, 3)
    captions: list[str]  # the memory model's text
    prompts: list[str]  # the generator's prompt per world ("" = history term)
    policy: str  # memory policy of the rollout
    given: int  # ground-truth blocks before the rollout
    window: int  # first block of the scored window (a generated block)
    exits: list[int]  # per block: the sampler step the block stops at (entries of given blocks unused)
    seeds: list[int]  # per world: its rollout noise stream
    window_poses: torch.Tensor  # (N, W*F, 3) on the device
    teacher_text: torch.Tensor  # (N, 1, D) caption + the window's motion phrase
    empty_text: torch.Tensor  # (N, 1, D) the empty prompt (guidance)
    train_generator: bool
    dmd_t: torch.Tensor  # (N,) time of the DMD re-noising
    dmd_noise: torch.Tensor  # (N, W*F, C, h, w)
    critic_t: torch.Tensor  # (N,)
    critic_noise: torch.Tensor  # (N, W*F, C, h, w)
    flow_noise: torch.Generator | None = None  # draws the flow anchor's times and noise (flow_weight > 0)


def rollout_window(generator: Generator, memory: MemoryModel, autoencoder, text_encoder, b: DMDBatch,
                   teacher_blocks: int, grad: bool) -> torch.Tensor:
    """The batch's self-forced rollout and its scored window (N, teacher_blocks * F, C, h, w), with gradients
    through the window's blocks (one sampler step each) when ``grad``."""
    window = range(b.window, b.window + teacher_blocks)
    runtime = WorldModel(generator, memory, autoencoder, text_encoder, memory=b.policy,
                         device=next(generator.parameters()).device, frozen=False)
    world = RecordingWorld(runtime, b.exits, grad_blocks=window if grad else (), seeds=b.seeds)
    blocks = b.poses.shape[1]
    play_blocks(world, b.truth, b.poses, b.captions, [[p] * blocks for p in b.prompts], b.given)
    return torch.cat(world.latents[b.window - b.given:b.window - b.given + teacher_blocks], 1)


def dmd_loss(x: torch.Tensor, teacher: Teacher, critic: Teacher, pose: torch.Tensor, text: torch.Tensor,
             t: torch.Tensor, noise: torch.Tensor, guidance: float = 0.0,
             empty_text: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DMD on generated windows x (N, T, C, h, w) at times t (N,): the surrogate 0.5 * mean((x - sg(x - grad))^2) of
    grad = (x0_critic - x0_teacher) / mean|x - x0_teacher| (teacher with CFG ``guidance`` > 0), with logged values."""
    x_det = x.detach().float()
    times = t[:, None].expand(-1, x.shape[1])  # one time per window
    with torch.no_grad():
        x_t = add_noise(x_det, noise, times)
        fake = critic.x0(x_t, times, pose, text)
        real = teacher.x0(x_t, times, pose, text)
        if guidance:
            real = real + guidance * (real - teacher.x0(x_t, times, pose, empty_text))
        normaliser = (x_det - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True)  # (N, 1, 1, 1, 1)
        grad = torch.nan_to_num((fake - real) / normaliser)
    loss = 0.5 * F.mse_loss(x.float(), x_det - grad)
    return loss, {"dmd_grad": grad.abs().mean(), "critic_teacher_gap": (fake - real).abs().mean()}


def critic_loss(critic: Teacher, x: torch.Tensor, pose: torch.Tensor, text: torch.Tensor, t: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
    """Flow-matching loss of the critic on generated windows x (N, T, C, h, w) (detached) at times t (N,)."""
    x = x.detach().float()
    times = t[:, None].expand(-1, x.shape[1])  # one time per window
    return F.mse_loss(critic(add_noise(x, noise, times), times, pose, text).float(), velocity_target(x, noise))


def score_times(n: int, cfg: DMDStageConfig, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) uniform times shifted by the sampler's shift (as the generator's levels are), clamped to [min_t, max_t]."""
    u = torch.rand(n, generator=generator, device=device)
    return shift_time(u, cfg.model.flow.shift).clamp(cfg.min_t, cfg.max_t)


class DMDParts(NamedTuple):
    """The frozen pieces a DMD step reads (``teacher`` None without the DMD term)."""

    memory: MemoryModel
    autoencoder: nn.Module
    teacher: Teacher | None
    text_encoder: object
    window_blocks: int  # blocks in the scored window (the teacher's clip_blocks when there is one)


def decoded(ae, latents: torch.Tensor) -> torch.Tensor:
    """Latents (N, T, C, h, w) -> frames (N, T, 3, H, W) in about [-1, 1], with gradients (one decode per step: the
    judge and the memory anchor read the same frames)."""
    made = ae.decode_unclamped(rearrange(latents, "n t c h w -> (n t) c h w"))
    return rearrange(made, "(n t) c h w -> n t c h w", n=latents.shape[0])


def judged(disc: Discriminator, frames: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A window's decoded frames (N, W*F, 3, H, W) and its carried pixels (N, W*F, 1, H, W) as the judge reads them,
    ``J`` = ``disc.cfg.frames`` frames (one block, or consecutive blocks) per sample: (frames (N*W*F/J, J, 3, H, W),
    coverage (N*W*F/J, J, 1, H, W))."""
    f = disc.cfg.frames
    return (rearrange(frames, "n (k f) c h w -> (n k) f c h w", f=f),
            rearrange(seen.float(), "n (k f) c h w -> (n k) f c h w", f=f))


def adversarial_terms(models: DMDModels, parts: DMDParts, b: DMDBatch, made: torch.Tensor, cfg: DMDStageConfig
                      ) -> tuple[torch.Tensor, dict]:
    """The judge's relativistic loss (each generated block of the window against the real block at its poses, +
    r1_weight / 2 x R1 on real and r2_weight / 2 x R2 on generated) and, on generator steps, gan_weight x the
    generator's loss through the fixed judge; losses average the patches at least ``invented_threshold`` invented.
    ``made``: the window's decoded frames (:func:`decoded`)."""
    disc, ae = models.discriminator, parts.autoencoder
    real, seen = carried_truth(ae, b.truth, b.poses, b.window, parts.window_blocks, models.generator.cfg.reproject)
    real_x, cover = judged(disc, decoded(ae, real), seen)
    fake_x, _ = judged(disc, made.detach(), seen)
    r1, real_logits = r1_penalty(disc, real_x, cover)
    fake_logits = disc(fake_x, cover)
    w = invented_patches(1 - cover, fake_logits, cfg.invented_threshold)
    d_loss = discriminator_loss(real_logits, fake_logits, w)
    out = {"d_loss": d_loss, "r1": r1, "d_acc_pair": pair_accuracy(real_logits.detach(), fake_logits.detach(), w),
           "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean(), "judged_patches_fake": w.sum()}
    loss = d_loss + 0.5 * cfg.r1_weight * r1
    if cfg.r2_weight > 0:
        r2, _ = r1_penalty(disc, fake_x, cover)
        loss = loss + 0.5 * cfg.r2_weight * r2
        out["r2"] = r2
    if b.train_generator:
        frozen = {k: v.detach() for k, v in disc.named_parameters()}  # no judge gradients from the generator's loss
        gen_x, _ = judged(disc, made, seen)
        g_adv = generator_loss(real_logits, torch.func.functional_call(disc, frozen, (gen_x, cover)), w)
        loss = loss + cfg.gan_weight * g_adv
        out["g_adv"] = g_adv
    return loss, out


def flow_anchor(models: DMDModels, parts: DMDParts, b: DMDBatch) -> torch.Tensor:
    """The generator's flow-matching loss on the batch's real clips (:func:`~magworld.train.common.real_flow_loss`),
    with the rollout's prompts (empty on history-term clips) and memory policy."""
    device = next(models.generator.parameters()).device
    frames = torch.from_numpy(np.ascontiguousarray(rearrange(b.truth, "n b f h w c -> n (b f) c h w")))
    pose = torch.from_numpy(np.ascontiguousarray(rearrange(b.poses, "n b f p -> n (b f) p"))).to(device).float()
    enc = parts.text_encoder.encode
    return real_flow_loss(models.generator, parts.memory, parts.autoencoder, frames, pose, enc(b.prompts).to(device),
                          enc(b.captions).to(device), b.policy, b.flow_noise)


def memory_anchor(b: DMDBatch, made: torch.Tensor, width: int) -> tuple[torch.Tensor, int]:
    """(mean L1 in [-1, 1] units of the window's decoded frames ``made`` (N, W*F, 3, H, W) vs the simulator's on the
    remembered pixels (:func:`~magworld.train.common.remembered_pixels`; 0 with no such pixel), how many pixels that
    was)."""
    f = b.truth.shape[2]
    first, size = b.window * f, b.truth.shape[-2]
    poses = rearrange(b.poses, "n b f p -> n (b f) p")
    mask = torch.from_numpy(remembered_pixels(poses, b.given * f, first, width * f, size)).to(made.device)
    if not mask.any():
        return made.new_zeros(()), 0
    truth = torch.from_numpy(np.ascontiguousarray(b.truth[:, b.window:b.window + width])).to(made.device)
    truth = rearrange(truth, "n b f h w c -> n (b f) c h w").float() / 127.5 - 1.0
    error = (made - truth).abs().mean(2)  # (N, W*F, H, W)
    return error[mask].mean(), int(mask.sum())


def dmd_step(models: DMDModels, parts: DMDParts, b: DMDBatch, cfg: DMDStageConfig) -> dict:
    """One step's losses: critic (with the DMD term) and judge (with the adversarial term) always, the generator's
    terms when ``b.train_generator`` (each loss's gradients touch one network)."""
    window = rollout_window(models.generator, parts.memory, parts.autoencoder, parts.text_encoder, b,
                            parts.window_blocks, grad=b.train_generator)
    out = {"policy": b.policy, "generator_step": b.train_generator, "exit": b.exits[b.window]}
    loss = window.new_zeros(())
    if models.critic is not None:
        critic = critic_loss(models.critic, window, b.window_poses, b.teacher_text, b.critic_t, b.critic_noise)
        out["critic_loss"] = critic
        loss = critic
        if b.train_generator:
            dmd, logs = dmd_loss(window, parts.teacher, models.critic, b.window_poses, b.teacher_text, b.dmd_t,
                                 b.dmd_noise, cfg.guidance, b.empty_text)
            loss = loss + (dmd if cfg.dmd_weight == 1.0 else cfg.dmd_weight * dmd)
            out.update(dmd_loss=dmd, **logs)
    anchored = cfg.memory_weight > 0 and b.train_generator
    made = decoded(parts.autoencoder, window.float()) if models.discriminator is not None or anchored else None
    if models.discriminator is not None:
        adv, logs = adversarial_terms(models, parts, b, made, cfg)
        loss = loss + adv
        out.update(logs)
    if anchored:
        remembered, pixels = memory_anchor(b, made, parts.window_blocks)
        loss = loss + cfg.memory_weight * remembered
        out.update(memory_l1=remembered, remembered_pixels=pixels)
    if cfg.flow_weight > 0 and b.train_generator:
        flow = flow_anchor(models, parts, b)
        loss = loss + cfg.flow_weight * flow
        out["flow"] = flow
    return {"loss": loss, **out}


def build_parts(cfg: DMDStageConfig, device: torch.device) -> tuple[DMDModels, DMDParts, dict]:
    """(trainable models, frozen parts, provenance hashes) on ``device``."""
    ae, text_encoder = frozen_autoencoder(cfg.autoencoder, device), make_text_encoder(cfg.text)
    memory, memory_hash = frozen_memory(cfg.memory_model, cfg.model, "dmd")
    teacher, hashes = None, {"memory_sha256": memory_hash}
    if cfg.dmd_weight > 0:  # the DMD term's real score; without it no teacher file is read
        teacher = load_teacher(cfg.teacher).requires_grad_(False).to(device)
        tc = teacher.cfg.transformer
        if (tc.latent_channels, tc.latent_size, tc.block_frames) != (cfg.model.transformer.latent_channels,
                                                                      cfg.model.transformer.latent_size,
                                                                      cfg.model.transformer.block_frames):
            raise SystemExit(f"magworld train stage=dmd: teacher {cfg.teacher} scores other latents or blocks than the "
                             f"generator makes ({tc} vs {cfg.model.transformer}); train the teacher on this autoencoder")
        if cfg.blocks - cfg.context_blocks < teacher.cfg.clip_blocks:
            raise SystemExit(f"magworld train stage=dmd: blocks - context_blocks = {cfg.blocks - cfg.context_blocks} "
                             f"generated blocks cannot hold the teacher's {teacher.cfg.clip_blocks}-block window; "
                             f"raise blocks")
        hashes["teacher_sha256"] = sha256(cfg.teacher)
    generator = initial_generator(cfg.model, cfg.init, memory).train()
    critic = None if teacher is None else copy.deepcopy(teacher).requires_grad_(True).train()
    width = teacher.cfg.clip_blocks if teacher is not None else cfg.window_blocks  # blocks in the scored window
    disc = None
    if cfg.gan_weight > 0:
        frames, window = cfg.model.transformer.block_frames, width * cfg.model.transformer.block_frames
        if cfg.discriminator.frames % frames or window % cfg.discriminator.frames:
            raise SystemExit(f"magworld train stage=dmd: the discriminator judges whole blocks of {frames} frames that "
                             f"tile the {window}-frame window; set dmd.discriminator.frames to {frames} or a multiple "
                             f"dividing {window}")
        disc = Discriminator(cfg.discriminator).train()
    models = DMDModels(generator, critic, disc).to(device)
    return models, DMDParts(memory.to(device), ae, teacher, text_encoder, width), hashes


def batches(cfg: DMDStageConfig, parts: DMDParts, placement: Placement, start: int) -> Iterator[DMDBatch]:
    """Endless :class:`DMDBatch` es from step ``start`` (streams seeded from it, as every stage's)."""
    device, bf = placement.device, cfg.model.transformer.block_frames
    tc, width = cfg.model.transformer, parts.window_blocks
    stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own clips
    rng, noise = placement.streams(cfg.run.seed, start)
    flow_noise = placement.generator(cfg.run.seed * 100_003 + start + 7_919) if cfg.flow_weight > 0 else None
    n, steps = placement.local_batch(cfg.run.batch_size), cfg.model.flow.steps
    for step in count(start):
        clip = stream.clips(n, cfg.blocks * bf)
        truth, poses = as_blocks(clip, bf)
        given = int(rng.integers(1, cfg.context_blocks + 1))
        window = int(rng.integers(given, cfg.blocks - width + 1))
        exits = ([int(rng.integers(steps))] * cfg.blocks if cfg.same_exit_step
                 else rng.integers(0, steps, size=cfg.blocks).tolist())
        window_poses = clip.poses[:, window * bf:(window + width) * bf].to(device)  # (N, W*F, 3)
        teacher_prompts = [f"{c}, {motion_phrase(p, bf)}" for c, p in zip(clip.captions, window_poses.cpu())]
        shape = (n, width * bf, tc.latent_channels, tc.latent_size, tc.latent_size)
        yield DMDBatch(truth, poses, clip.captions, clip_prompts(clip, bf, cfg.history_drop, rng),
                       draw_policy(cfg.policies, rng), given, window, exits,
                       rng.integers(0, 2 ** 31, size=n).tolist(), window_poses,
                       parts.text_encoder.encode(teacher_prompts).to(device),
                       parts.text_encoder.encode([""] * n).to(device),
                       step % cfg.generator_every == 0 and step >= cfg.generator_start,
                       score_times(n, cfg, noise, device), torch.randn(shape, generator=noise, device=device),
                       score_times(n, cfg, noise, device), torch.randn(shape, generator=noise, device=device),
                       flow_noise)


def build_stage(cfg: DMDStageConfig, placement: Placement) -> Stage:
    if placement.parallel == "fsdp":
        raise ValueError("stage=dmd rolls the generator out on each rank's own schedule and keeps an EMA copy, which "
                         "sharded (FSDP) networks cannot do; use run.parallel=ddp")
    models, parts, hashes = build_parts(cfg, placement.device)
    heldout = heldout_clips(cfg.data, cfg.eval_clips, cfg.heldout_blocks * cfg.model.transformer.block_frames)
    groups = [(name, m, scale) for name, m, scale in (("generator", models.generator, 1.0),
              ("critic", models.critic, cfg.critic_lr_scale), ("discriminator", models.discriminator, cfg.disc_lr_scale))
              if m is not None]  # one parameter group each; the generator's keeps the run's lr
    optimizer = torch.optim.AdamW([{"params": m.parameters(), **({"lr_scale": s} if i else {})}
                                   for i, (_, m, s) in enumerate(groups)],
                                  lr=cfg.run.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.run.weight_decay)

    def after_step(done: int) -> None:  # the EMA follows each generator update
        if (done - 1) % cfg.generator_every == 0:
            models.update_ema(cfg.ema_decay if done > cfg.ema_start else 0.0)

    last_generator: dict = {}  # the latest generator step's values, logged on the critic-only steps too

    every_step = {"loss", "critic_loss", "policy", "generator_step", "exit", "d_loss", "r1", "r2", "d_acc_pair",
                  "d_real", "d_fake", "judged_patches_fake"}

    def step(model: nn.Module, b: DMDBatch) -> dict:
        out = dmd_step(model, parts, b, cfg)
        if b.train_generator:
            last_generator.clear()
            last_generator.update({k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()
                                   if k not in every_step})
        return {**last_generator, **out}

    def evaluate() -> dict[str, float]:
        return evaluate_rollouts(models.ema, parts.memory, parts.autoencoder, parts.text_encoder, heldout,
                                 cfg.eval_context_blocks, policies=tuple(cfg.eval_policies), details=cfg.eval_detail)

    model_config = {"generator": asdict(cfg.model)}
    if parts.teacher is not None:
        model_config["critic"] = asdict(parts.teacher.cfg)
    if models.discriminator is not None:
        model_config["discriminator"] = asdict(cfg.discriminator)
    label = " ".join([f"dmd λ={cfg.history_drop} k={cfg.generator_every}"] +
                     ([f"dmd×{cfg.dmd_weight}"] if cfg.dmd_weight != 1.0 else []) +
                     ([f"gan×{cfg.gan_weight}"] if cfg.gan_weight else []))
    return Stage(kind="dmd", model=models, model_config=model_config,
                 optimizer=optimizer, data=lambda start: batches(cfg, parts, placement, start),
                 step=step, evaluate=evaluate,
                 max_grad_norm=cfg.max_grad_norm, clip_groups=tuple(m for _, m, _ in groups),
                 clip_names=tuple(n for n, _, _ in groups), after_step=after_step,
                 partial_steps=True,  # critic-only steps leave the generator without gradients (DDP looks for them)
                 unit="clips", label=label, eval_at_start=True,
                 extra={**hashes, "history_drop": cfg.history_drop, "policies": cfg.policies, "dmd": True,
                        "generator_every": cfg.generator_every,
                        **({"dmd_weight": cfg.dmd_weight, "gan_weight": cfg.gan_weight} if cfg.gan_weight or
                           cfg.dmd_weight != 1.0 else {})},
                 keep_every=cfg.keep_every)


def train(cfg: DMDStageConfig) -> dict[str, float]:
    placement = setup_device(cfg.run)
    stage = build_stage(cfg, placement)
    metrics = run_stage(stage, cfg.run, placement, asdict(cfg))
    if placement.is_main:  # rank 0 writes (run_stage's final export is on disk: it waits for every rank)
        run_dir = Path(cfg.run.out_dir)  # the EMA generator as <run>/generator.safetensors (WorldModel, bundle read it)
        print(f"wrote {export_generator(run_dir / f'{stage.kind}.safetensors', run_dir / 'generator')} (EMA generator)")
    return metrics
