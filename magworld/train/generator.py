"""Stage ``generator`` (MAG stage 2): learn to generate the next block from the frozen memory model's cache, all
blocks of a clip in one parallel pass (the step, the history term and self-forcing: docs/notes/code.md).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Iterator, NamedTuple

import torch

from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import TextConfig, make_text_encoder
from magworld.protocol import play_blocks

from .common import (RecordingWorld, as_blocks, bundled_generator_config, check_init, check_policies, clip_prompts,
                     draw_policy, encode_clip, evaluate_rollouts, frozen_autoencoder, frozen_memory, generator_loss,
                     initial_generator, training_condition)
from .data import Clip, WorldDataConfig, WorldStream, heldout_clips
from .loop import Placement, RunConfig, Stage, train_stage


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
        check_init(self.init)
        check_policies(self.policies, self.model)
        if len(self.recall_k) != 2 or not 0 <= self.recall_k[0] <= self.recall_k[1]:
            raise ValueError(f"recall_k is an inclusive range [lo, hi] with 0 <= lo <= hi, got {self.recall_k}")
        if self.uncovered_weight < 0 or (self.uncovered_weight and not self.model.reproject):
            raise ValueError(f"uncovered_weight must be >= 0 and needs model.reproject=true, got {self.uncovered_weight}")
        if not 0.0 <= self.pure_noise <= 1.0:
            raise ValueError(f"pure_noise is a probability in [0, 1], got {self.pure_noise}")
        if self.blocks < 2 or not 1 <= self.eval_context_blocks < self.blocks:
            raise ValueError("need blocks >= 2 and 1 <= eval_context_blocks < blocks")


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
    memory, memory_hash = frozen_memory(cfg.memory_model, cfg.model, "generator")
    memory = memory.to(device)
    gen = initial_generator(cfg.model, cfg.init, memory).to(device).train()
    bf = cfg.model.transformer.block_frames
    frames = cfg.blocks * bf
    heldout = heldout_clips(cfg.data, cfg.eval_clips, frames)

    def data(start: int) -> Iterator[GeneratorBatch]:
        stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own clips
        rng, noise = placement.streams(cfg.run.seed, start)
        for step in count(start):
            clip = stream.clips(placement.local_batch(cfg.run.batch_size), frames)
            latents = encode_clip(ae, clip.frames.to(device))  # (B, T, C, h, w)
            prompts = clip_prompts(clip, bf, cfg.history_drop, rng)
            text = text_encoder.encode(prompts).to(device)  # (B, 1, D)
            memory_text = text_encoder.encode(clip.captions).to(device)  # (B, 1, D)
            policy = draw_policy(cfg.policies, rng)
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
    return train_stage(build_stage, cfg)
