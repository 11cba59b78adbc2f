"""Stage ``generator`` (MAG stage 2): learn to generate the next block from the frozen memory model's cache.

One training step, all blocks of a clip in one parallel pass:

1. render ``batch_size`` long clips (mostly leave-and-return) of ``blocks`` blocks, encode them with the
   frozen autoencoder;
2. draw a memory policy per batch (``policies``: mag / full / window / mag-ring / mag-recall) and run the frozen
   memory model's clean pass over the whole clip with :func:`~magworld.model.generator.writer_mask` (block i sees the
   kept frames of the earlier blocks the policy holds): the key/values a run-time cache would hold. A ``mag-recall``
   batch reads, per clip and block, the sink, the last block and the K frames the run-time store would recall for that
   block's poses (:func:`~magworld.model.masks.held_by`; K drawn from ``recall_k`` per batch, since a 10-block clip
   holds at most 8 candidates): non-contiguous, pose-retrieved frames at their own positions, as at run time;
3. noise every block to its own flow time and let the generator predict the velocity of each noisy
   block through :func:`~magworld.model.generator.reader_mask` — block i reads the cached clean frames of
   earlier blocks the policy holds and its own noisy frames; loss on blocks 1.. (block 0 has no history);
4. with probability ``history_drop`` (the paper's lambda) a clip's prompt is empty, so its blocks must
   come from the history alone (history-consistency term); otherwise the prompt is caption + the
   clip's dominant action phrase, as at run time.

Optionally (``self_forcing`` > 0) part of the batches replace the history blocks after a random number of
ground-truth blocks by the generator's own few-step rollout (no gradient), keeping ground-truth targets: the
generator learns to trust the (ground-truth) memory over its own blurrier recent blocks. Evaluation rolls held-out clips out
through :class:`~magworld.model.pipeline.WorldModel` exactly as at run time (:func:`~magworld.train.common.evaluate_rollouts`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from itertools import count
from typing import Iterator, NamedTuple

import numpy as np
import torch
from einops import rearrange
from torch.nn import functional as F

from magworld.model.autoencoder import Autoencoder
from magworld.model.cache import CacheConfig, KVCache
from magworld.model.flow import add_noise, sample_train_time, velocity_target
from magworld.model.generator import Generator, GeneratorConfig, held_by, reader_mask, write_clip
from magworld.model.memory_model import MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.reproject import carry_condition, warp_block
from magworld.model.text import TextConfig, make_text_encoder
from magworld.protocol import play_blocks

from .common import (RecordingWorld, as_blocks, bundled_generator_config, clip_prompts, encode_clip,
                     evaluate_rollouts, frozen_autoencoder, frozen_memory, initial_generator)
from .data import Clip, WorldDataConfig, WorldStream, heldout_clips
from .loop import Placement, RunConfig, Stage, run_stage, setup_device


@dataclass
class GeneratorStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(  # the bundled generator's base run
        out_dir="runs/generator", steps=600, lr=1e-4, eval_every=300))
    model: GeneratorConfig = field(default_factory=bundled_generator_config)  # the bundled generator's shape
    data: WorldDataConfig = field(default_factory=lambda: WorldDataConfig(leave_and_return_prob=0.8))
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: str = "bundled"  # or a path to an autoencoder .safetensors
    memory_model: str = "bundled"  # or a path to a memory-model .safetensors (frozen)
    init: str = "memory"  # "memory": the memory model's weights; "random"; "bundled" or a generator .safetensors: its
    # network's weights (a reproject generator's condition embedding starts at zero)
    blocks: int = 8  # blocks per training clip
    history_drop: float = 0.3  # lambda: probability that a clip's prompt is empty
    policies: dict[str, float] = field(default_factory=lambda: {"mag": 0.35, "mag-recall": 0.35, "full": 0.15,
                                                                 "window": 0.15})
    recall_k: list[int] = field(default_factory=lambda: [2, 6])  # mag-recall batches: K drawn from [lo, hi] per batch
    max_offset_blocks: int = 16  # random absolute start block (RoPE time) in 0..max_offset_blocks
    self_forcing: float = 0.3  # probability that a batch's history is the generator's own rollout
    self_forcing_steps: int = 2  # sampler steps of that rollout
    eval_clips: int = 16
    eval_context_blocks: int = 2  # held-out clips: this many ground-truth blocks, the rest generated
    keep_every: int = 0  # also export the weights every this many steps (step_NNNNN.safetensors; ablations)
    uncovered_weight: float = 1.0  # reproject only: extra loss weight on latent cells the reprojection does not
    #   cover (weight 1 + w * (1 - coverage)), so the loss comes from where memory or invention must supply the picture
    pure_noise: float = 0.0  # probability that a block trains at t = 1 (pure noise), the only level a 1-step sampler
    #   visits: there the flow loss is the squared error of the x0 prediction, a regression to the conditional mean

    def __post_init__(self) -> None:
        if not 0.0 <= self.history_drop <= 1.0 or not 0.0 <= self.self_forcing <= 1.0:
            raise ValueError("history_drop and self_forcing are probabilities in [0, 1]")
        if self.init not in ("memory", "random", "bundled") and not self.init.endswith(".safetensors"):
            raise ValueError(f"init must be 'memory', 'random', 'bundled' or a generator .safetensors, got {self.init!r}")
        if not self.policies or sum(self.policies.values()) <= 0:
            raise ValueError(f"policies needs positive weights for some of mag/full/window, got {self.policies}")
        for name in self.policies:
            self.model.cache_config(name)
        if len(self.recall_k) != 2 or not 0 <= self.recall_k[0] <= self.recall_k[1]:
            raise ValueError(f"recall_k is an inclusive range [lo, hi] with 0 <= lo <= hi, got {self.recall_k}")
        if self.uncovered_weight < 0 or (self.uncovered_weight and not self.model.reproject):
            raise ValueError(f"uncovered_weight must be >= 0 and needs model.reproject=true, got {self.uncovered_weight}")
        if not 0.0 <= self.pure_noise <= 1.0:
            raise ValueError(f"pure_noise is a probability in [0, 1], got {self.pure_noise}")
        if self.blocks < 2 or not 1 <= self.eval_context_blocks < self.blocks:
            raise ValueError("need blocks >= 2 and 1 <= eval_context_blocks < blocks")


def memory_config(cfg: GeneratorConfig, policy: str, recall: int | None = None) -> CacheConfig:
    """The run-time cache config of ``policy``, with ``recall`` frames recalled (mag-recall) when given."""
    config = cfg.cache_config(policy)
    return config if recall is None else replace(config, recall=recall)


def attended_frames(cfg: GeneratorConfig, policy: str, pose: torch.Tensor, recall: int | None = None) -> torch.Tensor:
    """Bool (F, F), or (B, F, F) per clip for mag-recall: the earlier frames each frame's block attends to in training
    (:func:`~magworld.model.masks.held_by` on the clip's poses (B, F, 3)): what the run-time cache holds for it."""
    return held_by(memory_config(cfg, policy, recall), pose.shape[1], cfg.transformer.block_frames, pose, pose.device)


@torch.no_grad()
def memory_kv(memory: MemoryModel, latents: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
              index: torch.Tensor, policy: str, cfg: GeneratorConfig, recall: int | None = None) -> KVCache:
    """The clean key/values of every frame of the clip, as the memory model writes them under ``policy``
    (:func:`~magworld.model.generator.write_clip`: the run-time writer's clean pass over the whole clip)."""
    return write_clip(memory, latents, pose, text, memory_config(cfg, policy, recall), index)


def generator_loss(gen: Generator, memory: MemoryModel, latents: torch.Tensor, pose: torch.Tensor,
                   text: torch.Tensor, memory_text: torch.Tensor, policy: str, offset: int,
                   generator: torch.Generator | None = None, history: torch.Tensor | None = None,
                   cond: torch.Tensor | None = None, uncovered_weight: float = 0.0,
                   recall: int | None = None, pure_noise: float = 0.0) -> dict[str, torch.Tensor]:
    """Flow-matching loss of every block but the first, each read from the memory model's cache of the earlier
    blocks under ``policy`` (``recall``: mag-recall's K, default the model's). ``history`` (default: ``latents``) is
    what the cache is written from. Times and noise are drawn on the latents' device (``generator`` must live
    there). With ``uncovered_weight`` w > 0 each
    latent cell's squared error is weighted by 1 + w * (1 - coverage) (``cond``'s last channel), normalised by the
    mean weight. ``pure_noise``: the probability that a block's time is 1 instead of a draw (the level a 1-step
    sampler asks for). Returns ``{"loss": ..., "flow": ...}`` (the same value: the loss is the flow loss)."""
    cfg, tc = gen.cfg, gen.cfg.transformer
    batch, frames = latents.shape[:2]
    bf = tc.block_frames
    index = torch.arange(offset, offset + frames, device=latents.device)
    cache = memory_kv(memory, latents if history is None else history, pose, memory_text, index, policy, cfg, recall)
    t = sample_train_time((batch, frames // bf), cfg.flow.shift, generator, latents.device)  # (B, blocks)
    if pure_noise:
        at_one = torch.rand(t.shape, generator=generator, device=t.device) < pure_noise
        t = torch.where(at_one, torch.ones_like(t), t)
    t = t.repeat_interleave(bf, 1)  # (B, T)
    noise = torch.randn(latents.shape, generator=generator, device=latents.device)
    mask = reader_mask(policy, frames, bf, cfg.kept, cfg.window, cfg.sink, tc.tokens_per_frame, latents.device,
                       held=attended_frames(cfg, policy, pose, recall))
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
    """The geometric input of every block of a clip, as :class:`WorldModel` builds it at run time: block b reads the
    last frame *shown* in block b - 1 — the real frame for the first ``given`` blocks (``frames`` (B, T, 3, H, W)
    uint8: ground truth the world was given), else decoded from ``shown`` (B, T, C, h, w), the latents of the clip
    or of a self-forced history — reprojected to block b's poses ``pose`` (B, T, 3). Block 0 has none (zeros: no
    latents, coverage 0). Returns (B, T, C + 1, h, w)."""
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


def self_forced_history(gen: Generator, memory: MemoryModel, ae, text_encoder, clip: Clip, latents: torch.Tensor,
                        prompts: list[str], policy: str, steps: int, seed: int, context: int,
                        recall: int | None = None) -> torch.Tensor:
    """The clip's latents with blocks ``context``.. replaced by the generator's own rollout (no gradient); the
    first ``context`` blocks stay ground truth (memorized), as in the benchmark's memorize protocol."""
    rolling = copy.deepcopy(gen)
    if recall is not None:  # the batch's K (mag-recall)
        rolling.cfg = replace(rolling.cfg, recall=recall)
    world = RecordingWorld(WorldModel(rolling, memory, ae, text_encoder, memory=policy, sampling_steps=steps,
                                      device=latents.device, seed=seed))
    bf = gen.cfg.transformer.block_frames
    truth, poses = as_blocks(clip, bf)
    play_blocks(world, truth, poses, clip.captions, [[p] * truth.shape[1] for p in prompts], context)
    return torch.cat([latents[:, :context * bf], *world.latents], 1)  # (N, T, C, h, w)


class GeneratorBatch(NamedTuple):
    latents: torch.Tensor  # (B, T, C, h, w) clean targets
    poses: torch.Tensor  # (B, T, 3)
    text: torch.Tensor  # (B, 1, text_dim): the prompts (caption + motion phrase, or empty)
    memory_text: torch.Tensor  # (B, 1, text_dim): the captions the memory model writes with
    policy: str  # memory policy of this batch
    offset: int  # first frame index (RoPE time)
    history: torch.Tensor | None  # (B, T, C, h, w) the cache is written from (self-forcing), None = latents
    cond: torch.Tensor | None  # (B, T, C + 1, h, w) geometric input (reproject generators), else None
    noise: torch.Generator  # draws this step's flow times and noise (on the run's device)
    recall: int | None = None  # mag-recall batches: frames recalled per block (K)


def build_stage(cfg: GeneratorStageConfig, placement: Placement) -> Stage:
    device = placement.device
    if placement.parallel == "fsdp" and cfg.self_forcing > 0:
        raise ValueError("generator.self_forcing > 0 rolls the generator out on each rank's own schedule, which a "
                         "sharded (FSDP) generator cannot do; use run.parallel=ddp or self_forcing=0")
    ae, text_encoder = frozen_autoencoder(cfg.autoencoder, device), make_text_encoder(cfg.text)
    memory, memory_hash = frozen_memory(cfg.memory_model)
    if memory.cfg.transformer != cfg.model.transformer or memory.cfg.kept != cfg.model.kept:
        raise SystemExit("magworld train stage=generator: the generator's transformer/kept must equal the memory "
                         f"model's ({memory.cfg.transformer}, kept={memory.cfg.kept}); use the same size preset")
    memory = memory.to(device)
    gen = initial_generator(cfg.model, cfg.init, memory).to(device).train()
    bf = cfg.model.transformer.block_frames
    frames = cfg.blocks * bf
    heldout = heldout_clips(cfg.data, cfg.eval_clips, frames)
    names, weights = list(cfg.policies), np.array(list(cfg.policies.values()), dtype=np.float64)

    def data(start: int) -> Iterator[GeneratorBatch]:
        stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own clips
        rng = np.random.default_rng([placement.rank_seed(cfg.run.seed), start])
        noise = placement.generator(cfg.run.seed * 100_003 + start)
        for step in count(start):
            clip = stream.clips(placement.local_batch(cfg.run.batch_size), frames)
            latents = encode_clip(ae, clip.frames.to(device))  # (B, T, C, h, w)
            prompts = clip_prompts(clip, bf, cfg.history_drop, rng)
            text = text_encoder.encode(prompts).to(device)  # (B, 1, D)
            memory_text = text_encoder.encode(clip.captions).to(device)  # (B, 1, D)
            policy = str(rng.choice(names, p=weights / weights.sum()))
            offset = int(rng.integers(0, cfg.max_offset_blocks + 1)) * bf
            recall = int(rng.integers(cfg.recall_k[0], cfg.recall_k[1] + 1)) if policy == "mag-recall" else None
            history, given = None, cfg.blocks  # given: ground-truth blocks (their real frames were shown)
            if cfg.self_forcing > 0 and rng.random() < cfg.self_forcing:
                given = int(rng.integers(1, cfg.blocks))  # ground-truth blocks before the model's own
                history = self_forced_history(gen, memory, ae, text_encoder, clip, latents, prompts, policy,
                                              cfg.self_forcing_steps, seed=step, context=given, recall=recall)
            poses = clip.poses.to(device)
            cond = training_condition(ae, latents if history is None else history, poses, bf, clip.frames,
                                      given) if cfg.model.reproject else None
            yield GeneratorBatch(latents, poses, text, memory_text, policy, offset, history, cond, noise, recall)

    def step(net: Generator, b: GeneratorBatch) -> dict:
        parts = generator_loss(net, memory, b.latents, b.poses, b.text, b.memory_text, b.policy, b.offset, b.noise,
                               b.history, b.cond, cfg.uncovered_weight, b.recall, cfg.pure_noise)
        return {**parts, "policy": b.policy}

    return Stage(kind="generator", model=gen, model_config=cfg.model,
                 optimizer=torch.optim.AdamW(gen.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay),
                 data=data, step=step,
                 evaluate=lambda: evaluate_rollouts(gen, memory, ae, text_encoder, heldout, cfg.eval_context_blocks),
                 unit="clips", label=f"generator λ={cfg.history_drop}", eval_at_start=True,
                 extra={"memory_sha256": memory_hash, "history_drop": cfg.history_drop, "policies": cfg.policies,
                        "recall_k": cfg.recall_k},
                 keep_every=cfg.keep_every)


def train(cfg: GeneratorStageConfig) -> dict[str, float]:
    placement = setup_device(cfg.run)
    return run_stage(build_stage(cfg, placement), cfg.run, placement, asdict(cfg))


__all__ = ["GeneratorBatch", "GeneratorStageConfig", "attended_frames", "build_stage", "flow_error", "generator_loss",
           "memory_config", "memory_kv", "self_forced_history", "train", "training_condition"]
