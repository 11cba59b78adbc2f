"""Stage ``teacher``: the DMD stage's real score, a many-step flow model of short clips (no history), trained on
rendered clips with their caption + motion phrase (empty with probability ``text_drop``); docs/notes/code.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Iterator, NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from magworld.model.flow import add_noise, shift_time, velocity_target
from magworld.model.pipeline import GENERATOR_FILE, load_generator, sha256
from magworld.model.pretrained import WEIGHTS_DIR, bundled_path
from magworld.model.teacher import Teacher, TeacherConfig
from magworld.model.text import TextConfig, make_text_encoder

from .common import check_init, clip_prompts, encode_clip, frozen_autoencoder, frozen_memory
from .loop import Placement, RunConfig, Stage, train_stage
from .data import WorldDataConfig, WorldStream, heldout_clips

EVAL_TIMES = (0.2, 0.5, 0.8)  # held-out loss at these (unshifted) flow times


@dataclass
class TeacherStageConfig:
    run: RunConfig = field(default_factory=lambda: RunConfig(out_dir="runs/teacher", steps=1500, lr=2e-4))
    model: TeacherConfig = field(default_factory=TeacherConfig)
    data: WorldDataConfig = field(default_factory=lambda: WorldDataConfig(leave_and_return_prob=0.8))
    text: TextConfig = field(default_factory=TextConfig)
    autoencoder: str = "bundled"  # or a path to an autoencoder .safetensors
    init: str = "bundled"  # "bundled" or a generator .safetensors: its network; "memory": the bundled memory model's
    # network (or memory_model's); "random"
    memory_model: str = "bundled"  # the memory model init="memory" copies
    text_drop: float = 0.1  # probability of the empty prompt
    eval_clips: int = 16

    def __post_init__(self) -> None:
        if not 0.0 <= self.text_drop <= 1.0:
            raise ValueError(f"text_drop is a probability in [0, 1], got {self.text_drop}")
        check_init(self.init)


def initial_teacher(cfg: TeacherStageConfig) -> tuple[Teacher, str]:
    """(teacher with its starting weights, sha256 of the file they came from or "random")."""
    teacher = Teacher(cfg.model)
    if cfg.init == "random":
        return teacher, "random"
    if cfg.init == "memory":
        source, digest = frozen_memory(cfg.memory_model)
    else:
        path = WEIGHTS_DIR / GENERATOR_FILE if cfg.init == "bundled" else cfg.init
        source, digest = load_generator(path), sha256(path)
    if source.cfg.transformer != cfg.model.transformer:
        raise SystemExit(f"magworld train stage=teacher: init={cfg.init!r} has transformer {source.cfg.transformer}, "
                         f"the teacher {cfg.model.transformer}; use the same size preset or init=random")
    teacher.net.load_state_dict(source.net.state_dict())
    return teacher, digest


@torch.no_grad()
def evaluate(teacher: Teacher, latents: torch.Tensor, poses: torch.Tensor, text: torch.Tensor) -> dict[str, float]:
    """Held-out flow-matching loss at the fixed times :data:`EVAL_TIMES` (shifted as in training), fixed noise."""
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0)).to(latents.device)
    result = {}
    for u in EVAL_TIMES:
        t = shift_time(torch.full(latents.shape[:2], u, device=latents.device), teacher.cfg.flow.shift)  # (B, T)
        pred = teacher(add_noise(latents, noise, t), t, poses, text)
        result[f"val_loss_t{u}"] = float(F.mse_loss(pred.float(), velocity_target(latents, noise)))
    result["val_loss"] = float(np.mean(list(result.values())))
    return result


class TeacherBatch(NamedTuple):
    latents: torch.Tensor  # (B, T, C, h, w)
    poses: torch.Tensor  # (B, T, 3)
    text: torch.Tensor  # (B, 1, D)
    noise: torch.Generator  # this step's flow times and noise (on the run's device)


def build_stage(cfg: TeacherStageConfig, placement: Placement) -> Stage:
    device = placement.device
    ae, text_encoder = frozen_autoencoder(cfg.autoencoder, device), make_text_encoder(cfg.text)
    teacher, init_hash = initial_teacher(cfg)
    teacher = teacher.to(device).train()
    bf = cfg.model.transformer.block_frames
    held = heldout_clips(cfg.data, cfg.eval_clips, cfg.model.frames)
    held_latents = encode_clip(ae, held.frames.to(device))
    held_text = text_encoder.encode(clip_prompts(held, bf, 0.0, np.random.default_rng(0))).to(device)

    def data(start: int) -> Iterator[TeacherBatch]:
        stream = WorldStream(cfg.data, seed=placement.rank_seed(cfg.run.seed + start))  # each rank its own clips
        rng, noise = placement.streams(cfg.run.seed, start)
        for _ in count(start):
            clip = stream.clips(placement.local_batch(cfg.run.batch_size), cfg.model.frames)
            yield TeacherBatch(encode_clip(ae, clip.frames.to(device)), clip.poses.to(device),
                               text_encoder.encode(clip_prompts(clip, bf, cfg.text_drop, rng)).to(device), noise)

    def step(net: Teacher, b: TeacherBatch) -> dict:
        return {"loss": net.loss(b.latents, b.poses, b.text, b.noise)}

    ae_hash = sha256(bundled_path("autoencoder") if cfg.autoencoder == "bundled" else cfg.autoencoder)
    return Stage(kind="teacher", model=teacher, model_config=cfg.model,
                 optimizer=torch.optim.AdamW(teacher.parameters(), lr=cfg.run.lr, weight_decay=cfg.run.weight_decay),
                 data=data, step=step, evaluate=lambda: evaluate(teacher, held_latents, held.poses.to(device), held_text),
                 unit="clips", label=f"teacher {cfg.model.clip_blocks} blocks", eval_at_start=True,
                 extra={"init": cfg.init, "init_sha256": init_hash, "autoencoder_sha256": ae_hash})


def train(cfg: TeacherStageConfig) -> dict[str, float]:
    return train_stage(build_stage, cfg)
