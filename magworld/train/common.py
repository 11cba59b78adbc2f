"""What the training stages share (no stage imports another): the frozen parts, clip helpers, rollouts through the
world's own runtime and their evaluation, real blocks made as the runtime makes them, the flow-matching loss.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
from einops import rearrange
from torch.nn import functional as F

from magworld.model.autoencoder import Autoencoder
from magworld.model.flow import FlowConfig, add_noise, sample_train_time, velocity_target
from magworld.model.cache import CacheConfig
from magworld.model.generator import Generator, GeneratorConfig, write_clip
from magworld.model.masks import held_frames, reader_mask
from magworld.model.memory_model import MemoryModel
from magworld.model.pipeline import GENERATOR_FILE, CarriedBlock, WorldModel, load_generator, sha256
from magworld.model.pretrained import WEIGHTS_DIR, bundled_path, load_autoencoder, load_bundled, load_memory
from magworld.model.reproject import carry_condition, warp_block
from magworld.protocol import play_blocks
from magworld.metrics import detail_ratio, masked_psnr
from magworld.revisit import directly_seen_blocks, memory_only_mask, revisit_reference
from magworld.world import ACTION_TABLE
from magworld.world.trajectory import BLOCK_FRAMES
from magworld.world.camera import invented_mask, visible_mask, wrap_degrees

from .data import Clip
from .metrics import psnr
from .parallel import plain_copy

SAME_POSE_DEGREES = 0.01  # evaluation: a generated frame revisits a given frame at (float-)exactly its pose


def bundled_generator_config() -> GeneratorConfig:
    """The bundled generator's configuration: the default shape, the geometric input (``reproject``), one sampler step;
    the default of every stage that trains a generator."""
    return GeneratorConfig(reproject=True, flow=FlowConfig(shift=2.0, steps=1, mode="renoise"))


# --- frozen parts -----------------------------------------------------------------------------------
def frozen_autoencoder(spec: str, device: torch.device | str | None = None) -> Autoencoder:
    """The autoencoder named by ``spec`` ("bundled" or a path), frozen, in eval mode, on ``device`` (None: as loaded)."""
    model = load_bundled("autoencoder") if spec == "bundled" else load_autoencoder(spec)
    return model.requires_grad_(False).eval().to(device)


def frozen_memory(spec: str, generator: GeneratorConfig | None = None, stage: str = "") -> tuple[MemoryModel, str]:
    """(frozen memory model named by ``spec`` ("bundled" or a path), sha256 of its file); with ``generator``, the
    config of the generator that reads it (``magworld train stage=<stage>`` exits unless the shapes agree)."""
    model = load_bundled("memory") if spec == "bundled" else load_memory(spec)
    path = bundled_path("memory") if spec == "bundled" else spec
    if generator is not None and (model.cfg.transformer != generator.transformer or model.cfg.kept != generator.kept):
        raise SystemExit(f"magworld train stage={stage}: the generator's transformer/kept must equal the memory model's "
                         f"({model.cfg.transformer}, kept={model.cfg.kept}); use the same size preset")
    return model.requires_grad_(False).eval(), sha256(path)


def check_init(init: str) -> None:
    """A stage's ``init`` names a generator's starting weights: "bundled", "memory", "random" or a .safetensors."""
    if init not in ("bundled", "memory", "random") and not init.endswith(".safetensors"):
        raise ValueError(f"init must be 'bundled', 'memory', 'random' or a generator .safetensors, got {init!r}")


def check_policies(policies: dict[str, float], model: GeneratorConfig) -> None:
    """Memory policies a stage draws from, with their weights: known names, some positive weight."""
    if not policies or sum(policies.values()) <= 0:
        raise ValueError(f"policies needs positive weights for some of mag/full/window, got {policies}")
    for name in policies:
        model.cache_config(name)


def draw_policy(policies: dict[str, float], rng: np.random.Generator) -> str:
    """One of ``policies``, drawn with their weights."""
    weights = np.array(list(policies.values()), dtype=np.float64)
    return str(rng.choice(list(policies), p=weights / weights.sum()))


def initial_generator(cfg: GeneratorConfig, init: str, memory: MemoryModel) -> Generator:
    """A generator with its starting weights: ``init`` "memory" (the memory model's network), "random", or "bundled" /
    a generator .safetensors (its network; a reproject generator's condition embedding too when both reproject)."""
    gen = Generator(cfg)
    if init == "memory":
        gen.net.load_state_dict(memory.net.state_dict())
    elif init != "random":
        source = load_generator(WEIGHTS_DIR / GENERATOR_FILE if init == "bundled" else init)
        if source.cfg.reproject and cfg.reproject:  # the condition embedding too
            gen.load_state_dict(source.state_dict())
        else:
            gen.net.load_state_dict(source.net.state_dict())
    return gen


# --- clips ------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_clip(ae: Autoencoder, frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, 3, H, W) -> latents (B, T, C, h, w)."""
    return rearrange(ae.encode(rearrange(frames, "b t c h w -> (b t) c h w")), "(b t) c h w -> b t c h w",
                     b=frames.shape[0])


@torch.no_grad()
def decode_clip(ae: Autoencoder, latents: torch.Tensor) -> torch.Tensor:
    """latents (B, T, C, h, w) -> uint8 (B, T, 3, H, W)."""
    return rearrange(ae.decode(rearrange(latents, "b t c h w -> (b t) c h w")), "(b t) c h w -> b t c h w",
                     b=latents.shape[0])


def as_blocks(clip: Clip, block_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A clip as :func:`~magworld.protocol.play_blocks` takes it: frames uint8 (N, B, F, H, W, 3) and poses
    float32 (N, B, F, 3)."""
    video = rearrange(clip.frames.cpu(), "n (b f) c h w -> n b f h w c", f=block_frames).numpy()
    poses = rearrange(clip.poses.cpu(), "n (b f) p -> n b f p", f=block_frames).numpy()
    return video, poses


def motion_phrase(poses: torch.Tensor, block_frames: int) -> str:
    """The action phrase most blocks of a clip's poses (T, 3) move by (``stay`` when none moves)."""
    names = []
    for s in range(0, poses.shape[0] - block_frames + 1, block_frames):
        d = poses[s + block_frames - 1] - poses[s]
        d[0] = wrap_degrees(d[0])
        best = max(ACTION_TABLE[1:], key=lambda a: float(d[0] * a.d_yaw + d[1] * a.d_pitch + d[2] * a.d_fov))
        moved = float(d.abs().max()) > 1e-3
        names.append(best.phrase if moved else ACTION_TABLE[0].phrase)
    return Counter(names).most_common(1)[0][0]


def clip_prompts(clip: Clip, block_frames: int, drop: float, rng: np.random.Generator) -> list[str]:
    """Each clip's run-time prompt (caption + motion phrase), empty with probability ``drop`` (the history term)."""
    return ["" if rng.random() < drop else f"{c}, {motion_phrase(p, block_frames)}"
            for c, p in zip(clip.captions, clip.poses)]


# --- rollouts through the world's runtime -----------------------------------------------------------
class RecordingWorld:
    """A block world over :meth:`WorldModel.generate` that keeps every generated block's latents (self-forcing, DMD):
    ``exits`` per block the sampler step it stops at, ``grad_blocks`` the blocks that keep their graph
    (``frozen=False``), ``seeds`` the worlds' noise streams."""

    def __init__(self, world: WorldModel, exits: Sequence[int] | None = None, grad_blocks: Sequence[int] = (),
                 seeds: Sequence[int] | None = None) -> None:
        self.world, self.name = world, world.name
        self.exits, self.grad_blocks, self.seeds = exits, frozenset(grad_blocks), seeds
        self.latents: list[torch.Tensor] = []  # generated blocks (N, F, C, h, w), in order
        self.block = 0  # blocks written so far: the index of the next one

    def start(self, frames: np.ndarray, poses: np.ndarray, captions: Sequence[str]) -> None:
        self.world.start(frames, poses, captions, seeds=self.seeds)
        self.latents, self.block = [], 1

    def memorize(self, frames: np.ndarray, poses: np.ndarray) -> None:
        self.world.memorize(frames, poses)
        self.block += 1

    def step(self, poses: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        block: CarriedBlock = self.world.generate(
            poses, prompts, exit_step=None if self.exits is None else self.exits[self.block],
            grad=self.block in self.grad_blocks)
        self.latents.append(block.latents)
        self.block += 1
        return self.world.show(block)

    def cache_bytes(self) -> int:
        return self.world.cache_bytes()


@torch.no_grad()
def rollout(world: WorldModel, clip: Clip, context_blocks: int, prompts: list[str]) -> np.ndarray:
    """Memorize ``context_blocks`` ground-truth blocks of each clip, generate the rest; uint8 (N, T, H, W, 3)."""
    truth, poses = as_blocks(clip, world.cfg.block_frames)
    shown = play_blocks(world, truth, poses, clip.captions, [[p] * truth.shape[1] for p in prompts], context_blocks)
    return rearrange(shown, "n b f h w c -> n (b f) h w c")


def revisits_of_context(poses: np.ndarray, context_frames: int) -> np.ndarray:
    """bool (N, T): frame t >= ``context_frames`` of a clip's poses (N, T, 3) returns to a context frame's pose."""
    found = np.zeros(poses.shape[:2], dtype=bool)
    for i, clip in enumerate(poses):
        for t in range(context_frames, len(clip)):
            found[i, t] = revisit_reference(clip[:context_frames], clip[t], tolerance=SAME_POSE_DEGREES) is not None
    return found


def memory_only_of_context(poses: np.ndarray, context_frames: int, size: int) -> np.ndarray:
    """bool (N, T, H, W), H = W = ``size``: for each frame t >= ``context_frames`` of a clip's poses (N, T, 3) that
    returns to a given frame's pose, the pixels only memory can supply (:func:`~magworld.revisit.memory_only_mask`
    against the frames of :func:`~magworld.revisit.directly_seen_blocks`: the env reward's one definition)."""
    found = np.zeros((*poses.shape[:2], size, size), dtype=bool)
    revisit = revisits_of_context(poses, context_frames)
    for i, t in zip(*np.nonzero(revisit)):
        seen = np.concatenate([poses[i, b * BLOCK_FRAMES:(b + 1) * BLOCK_FRAMES]
                               for b in directly_seen_blocks(int(t) // BLOCK_FRAMES)])
        found[i, t] = memory_only_mask(poses[i, t], seen, size, size)
    return found


def remembered_pixels(poses: np.ndarray, given_frames: int, first: int, count: int, size: int) -> np.ndarray:
    """bool (N, count, H, W), H = W = ``size``: for frames ``first .. first + count - 1`` of clips' poses (N, T, 3),
    the pixels a given (ground-truth) frame ``< given_frames`` showed and no frame of
    :func:`~magworld.revisit.directly_seen_blocks` (the sink, the last block) shows: what only memory can bring back,
    with the simulator's frame as the answer (empty when the given frames are all directly seen)."""
    found = np.zeros((poses.shape[0], count, size, size), dtype=bool)
    for k, t in enumerate(range(first, first + count)):
        direct = [f for b in directly_seen_blocks(t // BLOCK_FRAMES) for f in range(b * BLOCK_FRAMES, (b + 1) * BLOCK_FRAMES)]
        older = [f for f in range(given_frames) if f not in direct]
        for i in range(poses.shape[0] if older else 0):
            found[i, k] = visible_mask(poses[i, t], poses[i, older], size, size) & memory_only_mask(
                poses[i, t], poses[i, direct], size, size)
    return found


def evaluate_rollouts(gen: Generator, memory: MemoryModel, ae, text_encoder, clip: Clip, context_blocks: int,
                      policies: Sequence[str] = ("mag", "window", "full"), details: bool = False) -> dict[str, float]:
    """Held-out rollouts (first ``context_blocks`` given): PSNR per policy, on revisits of a given frame and on their
    memory-only pixels (the reward's definition); ``details``: also ``detail_<policy>``, the invented pixels'
    :func:`~magworld.metrics.detail_ratio`. Runs on the generator's device (``memory`` and ``ae`` there already)."""
    bf = gen.cfg.transformer.block_frames
    start = context_blocks * bf
    device = next(gen.parameters()).device
    prompts = [f"{c}, {motion_phrase(p, bf)}" for c, p in zip(clip.captions, clip.poses)]
    frozen = plain_copy(gen, lambda: Generator(gen.cfg))  # WorldModel freezes what it is given (FSDP: gathered)
    truth = rearrange(clip.frames[:, start:], "n t c h w -> (n t) c h w")
    revisit = torch.from_numpy(revisits_of_context(clip.poses.cpu().numpy(), start)[:, start:])
    memory_only = memory_only_of_context(clip.poses.cpu().numpy(), start, truth.shape[-1])[:, start:]  # (N, T', H, W)
    true = rearrange(clip.frames[:, start:].cpu(), "n t c h w -> n t h w c").numpy()
    invented = invented_mask(clip.poses.cpu().numpy(), bf, truth.shape[-1])[:, start:]  # (N, T', H, W)
    result: dict[str, float] = {}
    for policy in policies:
        world = WorldModel(frozen, memory, ae, text_encoder, memory=policy, device=device)
        made = torch.from_numpy(rollout(world, clip, context_blocks, prompts)[:, start:])  # (N, T', H, W, 3)
        p = psnr(rearrange(made, "n t h w c -> (n t) c h w"), truth).view(len(made), -1)  # (N, T')
        result[f"psnr_{policy}"] = float(p.mean())
        result[f"psnr_revisit_{policy}"] = float(p[revisit].mean()) if revisit.any() else float("nan")
        result[f"psnr_memory_only_{policy}"] = masked_psnr(made.numpy(), true, memory_only) if memory_only.any() \
            else float("nan")
        if details:
            result[f"detail_{policy}"] = detail_ratio(made.flatten(0, 1).numpy(), true.reshape(-1, *true.shape[2:]),
                                                      invented.reshape(-1, *invented.shape[2:]))
    return result


@torch.no_grad()
def carried_truth(ae: Autoencoder, truth: np.ndarray, poses: np.ndarray, first: int, count: int,
                  carry: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth blocks ``first .. first + count - 1`` (``first`` >= 1) of clips as a reproject world with ``carry``
    shows them (seen pixels: the previous last frame reprojected): (latents (N, count * F, C, h, w), seen (N, count * F,
    1, H, W) in {0, 1}, zeros without ``carry``), so a judge sees real and generated blocks made alike."""
    device = ae.latent_mean.device
    frames = Autoencoder.to_unit(rearrange(torch.from_numpy(np.ascontiguousarray(truth[:, first - 1:first + count])),
                                           "n b f h w c -> n b f c h w").to(device))  # (N, count + 1, F, 3, H, W)
    pose = torch.from_numpy(np.ascontiguousarray(poses[:, first - 1:first + count])).to(device).float()
    blocks, seen = [], []
    for j in range(1, count + 1):
        now = frames[:, j]
        if carry:
            warp = warp_block(frames[:, j - 1, -1], pose[:, j - 1, -1], pose[:, j])
            now = torch.where(warp.valid > 0, warp.frames, now)
            seen.append(warp.valid)
        else:
            seen.append(torch.zeros_like(now[:, :, :1]))
        blocks.append(now)
    made = torch.cat(blocks, 1)  # (N, count * F, 3, H, W)
    latents = rearrange(ae.encode_float(rearrange(made, "n t c h w -> (n t) c h w")), "(n t) c h w -> n t c h w",
                        n=made.shape[0])
    return latents, torch.cat(seen, 1)


# --- the flow-matching loss of stage 2 (the generator stage's loss; the adversarial stage's anchor on real clips) ----
def memory_config(cfg: GeneratorConfig, policy: str, recall: int | None = None) -> CacheConfig:
    """The run-time cache config of ``policy``, with ``recall`` frames recalled (mag-recall) when given."""
    config = cfg.cache_config(policy)
    return config if recall is None else replace(config, recall=recall)


def attended_frames(cfg: GeneratorConfig, policy: str, pose: torch.Tensor, recall: int | None = None) -> torch.Tensor:
    """Bool (F, F), or (B, F, F) per clip for mag-recall: the earlier frames each frame's block attends to in training
    (:func:`~magworld.model.masks.held_frames` on the clip's poses (B, F, 3)): what the run-time cache holds for it."""
    return held_frames(memory_config(cfg, policy, recall), pose.shape[1], cfg.transformer.block_frames, pose,
                       pose.device)


def generator_loss(gen: Generator, memory: MemoryModel, latents: torch.Tensor, pose: torch.Tensor,
                   text: torch.Tensor, memory_text: torch.Tensor, policy: str, offset: int,
                   generator: torch.Generator | None = None, history: torch.Tensor | None = None,
                   cond: torch.Tensor | None = None, uncovered_weight: float = 0.0,
                   recall: int | None = None, pure_noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Flow-matching loss of every block but the first, read from the memory model's cache (written from ``history``,
    default ``latents``) under ``policy`` (``recall``: mag-recall's K). ``uncovered_weight`` w weighs each cell's error
    by 1 + w * (1 - coverage); ``pure_noise``: probability of a block at t = 1. Returns ``{"loss", "flow"}`` (equal)."""
    cfg, tc = gen.cfg, gen.cfg.transformer
    batch, frames = latents.shape[:2]
    bf = tc.block_frames
    index = torch.arange(offset, offset + frames, device=latents.device)
    with torch.no_grad():  # the clean key/values of every frame, as the run-time writer writes them
        cache = write_clip(memory, latents if history is None else history, pose, memory_text,
                           memory_config(cfg, policy, recall), index)
    t = sample_train_time((batch, frames // bf), cfg.flow.shift, generator, latents.device)  # (B, blocks)
    if pure_noise:
        at_one = torch.rand(t.shape, generator=generator, device=t.device) < pure_noise
        t = torch.where(at_one, torch.ones_like(t), t)
    t = t.repeat_interleave(bf, 1)  # (B, T)
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    mask = reader_mask(attended_frames(cfg, policy, pose, recall), bf, tc.tokens_per_frame)
    pred = gen(add_noise(latents, noise, t), t, pose, text, cache, frame_index=index, mask=mask, cond=cond).prediction
    flow = flow_error(pred[:, bf:], velocity_target(latents, noise)[:, bf:], cond, uncovered_weight)
    return {"loss": flow, "flow": flow}


def flow_error(pred: torch.Tensor, target: torch.Tensor, cond: torch.Tensor | None,
               uncovered_weight: float) -> torch.Tensor:
    """Mean squared error of ``pred`` vs ``target`` (B, T', C, h, w), the generated blocks; per latent cell weighted by
    1 + ``uncovered_weight`` * (1 - coverage) (``cond``'s last channel), normalised by the weights."""
    if not uncovered_weight:
        return F.mse_loss(pred, target)
    frames = pred.shape[1]
    weight = 1.0 + uncovered_weight * (1.0 - cond[:, -frames:, -1:])  # (B, T', 1, h, w)
    error = (pred - target).square().mean(2, keepdim=True)  # (B, T', 1, h, w)
    return (weight * error).sum() / weight.sum().clamp_min(1e-8)


@torch.no_grad()
def training_condition(ae, shown: torch.Tensor, pose: torch.Tensor, block_frames: int,
                       frames: torch.Tensor | None = None, given: int = 0) -> torch.Tensor:
    """The geometric input of every block of a clip as the runtime builds it: block b reads the last frame shown in
    block b - 1 (real for the first ``given`` blocks, else ``shown``'s latents decoded) reprojected to its poses; block
    0 zeros. Returns (B, T, C + 1, h, w)."""
    batch, total = shown.shape[:2]
    blocks = total // block_frames
    ends = slice(block_frames - 1, total - 1, block_frames)  # the last frame of blocks 0 .. blocks - 2
    given = min(given, blocks - 1)
    if given > 0 and frames is None:
        raise ValueError("given > 0 takes the real last frames of the given blocks: pass frames")
    shown_last = []  # per source block, the frame it showed last: (B, k, 3, H, W) pieces
    if given > 0:  # ground truth: the real frame
        shown_last.append(Autoencoder.to_unit(frames[:, ends][:, :given].to(shown.device)))
    if given < blocks - 1:  # generated: its latents decoded (only these are decoded)
        made = shown[:, ends][:, given:]  # (B, blocks-1-given, C, h, w)
        shown_last.append(ae.decode_float(made.flatten(0, 1)).unflatten(0, made.shape[:2]))
    last = torch.cat(shown_last, 1)  # (B, blocks-1, 3, H, W)
    warp = warp_block(rearrange(last, "b k c h w -> (b k) c h w"), rearrange(pose[:, ends], "b k p -> (b k) p"),
                      rearrange(pose[:, block_frames:], "b (k f) p -> (b k) f p", f=block_frames))
    cond = rearrange(carry_condition(ae, warp), "(b k) f c h w -> b (k f) c h w", b=batch)  # (B, T - bf, C + 1, h, w)
    return torch.cat([torch.zeros_like(cond[:, :block_frames]), cond], 1)  # (B, T, C + 1, h, w)


def real_flow_loss(gen: Generator, memory: MemoryModel, ae: Autoencoder, frames: torch.Tensor, pose: torch.Tensor,
                   text: torch.Tensor, memory_text: torch.Tensor, policy: str,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`generator_loss` on real clips (``frames`` uint8 (B, T, 3, H, W), ``pose`` (B, T, 3)), every block given (a
    reproject generator reads each real previous frame reprojected); ``text`` the prompts, ``memory_text`` the
    captions."""
    bf, device = gen.cfg.transformer.block_frames, pose.device
    with torch.no_grad():
        latents = encode_clip(ae, frames.to(device))  # (B, T, C, h, w)
        cond = training_condition(ae, latents, pose, bf, frames, given=latents.shape[1] // bf) \
            if gen.cfg.reproject else None
    return generator_loss(gen, memory, latents, pose, text, memory_text, policy, 0, generator, cond=cond)["loss"]
