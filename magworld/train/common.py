"""What the training stages share (no stage imports another; each imports this and :mod:`~magworld.train.loop`).

- the frozen parts a stage reads: :func:`frozen_autoencoder`, :func:`frozen_memory`, and :func:`initial_generator`
  (a generator's starting weights);
- clips: :func:`encode_clip` / :func:`decode_clip` (uint8 frames <-> latents), :func:`as_blocks` (a clip in blocks as
  :func:`~magworld.protocol.play_blocks` takes it), :func:`clip_prompts` and :func:`motion_phrase` (the run-time
  prompt of a clip);
- rollouts through the world's own runtime: :class:`RecordingWorld` (a
  :class:`~magworld.model.pipeline.WorldModel` that keeps the latents of the blocks it generates, with DMD's exit step
  and gradient per block: self-forcing and DMD roll out exactly as the env steps) and :func:`evaluate_rollouts`
  (held-out clips, PSNR per memory policy and on revisits of the given blocks).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import torch
from einops import rearrange

from magworld.model.autoencoder import Autoencoder
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryModel
from magworld.model.pipeline import GENERATOR_FILE, CarriedBlock, WorldModel, load_generator, sha256
from magworld.model.pretrained import WEIGHTS_DIR, bundled_path, load_autoencoder, load_bundled, load_memory
from magworld.protocol import play_blocks
from magworld.revisit import revisit_reference
from magworld.world import ACTION_TABLE
from magworld.world.camera import wrap_degrees

from .data import Clip
from .metrics import psnr
from .parallel import plain_copy

SAME_POSE_DEGREES = 0.01  # evaluation: a generated frame revisits a given frame at (float-)exactly its pose


# --- frozen parts -----------------------------------------------------------------------------------
def frozen_autoencoder(spec: str, device: torch.device | str | None = None) -> Autoencoder:
    """The autoencoder named by ``spec`` ("bundled" or a path), frozen, in eval mode, on ``device`` (None: as loaded)."""
    model = load_bundled("autoencoder") if spec == "bundled" else load_autoencoder(spec)
    return model.requires_grad_(False).eval().to(device)


def frozen_memory(spec: str) -> tuple[MemoryModel, str]:
    """(frozen memory model named by ``spec`` ("bundled" or a path), sha256 of its file)."""
    model = load_bundled("memory") if spec == "bundled" else load_memory(spec)
    path = bundled_path("memory") if spec == "bundled" else spec
    return model.requires_grad_(False).eval(), sha256(path)


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
    """A :class:`~magworld.protocol.BlockWorld` over a :class:`~magworld.model.pipeline.WorldModel` that keeps the
    latents of every block it generates (self-forcing and DMD need latents, not pixels), each generated by the world's
    own :meth:`~magworld.model.pipeline.WorldModel.generate`. ``exits``: per block of the episode (start = block 0),
    the sampler step that block stops at (None: every step); ``grad_blocks``: the blocks whose latents keep the graph
    of that step (the world must be built with ``frozen=False``); ``seeds``: the worlds' noise streams."""

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


def evaluate_rollouts(gen: Generator, memory: MemoryModel, ae, text_encoder, clip: Clip, context_blocks: int,
                      policies: Sequence[str] = ("mag", "window", "full")) -> dict[str, float]:
    """Held-out rollouts (first ``context_blocks`` blocks given): PSNR of generated frames per policy, and on the frames
    whose pose revisits a given frame. Runs on the generator's device, where ``memory`` and ``ae`` must already be."""
    bf = gen.cfg.transformer.block_frames
    start = context_blocks * bf
    device = next(gen.parameters()).device
    prompts = [f"{c}, {motion_phrase(p, bf)}" for c, p in zip(clip.captions, clip.poses)]
    frozen = plain_copy(gen, lambda: Generator(gen.cfg))  # WorldModel freezes what it is given (FSDP: gathered)
    truth = rearrange(clip.frames[:, start:], "n t c h w -> (n t) c h w")
    revisit = torch.from_numpy(revisits_of_context(clip.poses.cpu().numpy(), start)[:, start:])
    result: dict[str, float] = {}
    for policy in policies:
        world = WorldModel(frozen, memory, ae, text_encoder, memory=policy, device=device)
        made = torch.from_numpy(rollout(world, clip, context_blocks, prompts)[:, start:])  # (N, T', H, W, 3)
        p = psnr(rearrange(made, "n t h w c -> (n t) c h w"), truth).view(len(made), -1)  # (N, T')
        result[f"psnr_{policy}"] = float(p.mean())
        result[f"psnr_revisit_{policy}"] = float(p[revisit].mean()) if revisit.any() else float("nan")
    return result


__all__ = ["RecordingWorld", "as_blocks", "clip_prompts", "decode_clip", "encode_clip", "evaluate_rollouts",
           "frozen_autoencoder", "frozen_memory", "initial_generator", "motion_phrase", "revisits_of_context",
           "rollout"]
