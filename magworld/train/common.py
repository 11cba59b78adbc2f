"""What every training stage shares: seeding, the run folder, JSON-lines metrics and resumable checkpoints."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from magworld.model.checkpoint import load_into, read_meta, save_checkpoint


@dataclass
class RunConfig:
    """Where a run writes and how long it lasts; shared by every stage."""

    out_dir: str = "runs/default"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    log_every: int = 25
    eval_every: int = 500
    save_every: int = 250
    threads: int = 2
    resume: bool = True
    max_minutes: float = 0.0  # stop (and save) after this wall time; 0 = no limit


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warm-up then cosine decay to 10% of ``cfg.lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress)))


class Run:
    """A run folder: ``last.safetensors`` (+ ``.json``) for resuming, ``metrics.jsonl``, ``config.json``."""

    def __init__(self, cfg: RunConfig, kind: str, stage_config: Any) -> None:
        self.cfg, self.kind = cfg, kind
        self.dir = Path(cfg.out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.dir / "last.safetensors"
        self.metrics = self.dir / "metrics.jsonl"
        self.start_time = time.time()
        (self.dir / "config.json").write_text(json.dumps(stage_config, indent=2, default=str))

    def resume(self, module: nn.Module, model_config: Any, optimizer: torch.optim.Optimizer) -> int:
        """Load ``last`` if it exists and resuming is on; returns the step to continue from."""
        if not (self.cfg.resume and self.checkpoint.exists()):
            return 0
        meta = load_into(module, self.checkpoint, self.kind, config=model_config, optimizer=optimizer)
        step = int(meta["extra"].get("step", 0))
        print(f"resuming {self.checkpoint} at step {step}")
        return step

    def save(self, module: nn.Module, model_config: Any, optimizer: torch.optim.Optimizer, step: int,
             extra: dict | None = None) -> None:
        save_checkpoint(self.checkpoint, module, self.kind, model_config, extra={"step": step, **(extra or {})},
                        optimizer=optimizer)

    def log(self, step: int, **values: Any) -> None:
        record = {"step": step, "time_s": round(time.time() - self.start_time, 2), **values}
        with self.metrics.open("a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")

    def out_of_time(self) -> bool:
        return self.cfg.max_minutes > 0 and time.time() - self.start_time > 60 * self.cfg.max_minutes

    def export(self, module: nn.Module, model_config: Any, name: str, extra: dict | None = None) -> Path:
        """Write inference weights (no optimiser state) as ``<run>/<name>.safetensors`` + JSON."""
        return save_checkpoint(self.dir / name, module, self.kind, model_config, extra=extra)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: torch.nn.Module,
                   max_grad_norm: float | None = 1.0) -> None:
    """Backpropagate ``loss`` and update ``module`` (gradients clipped to ``max_grad_norm`` when given)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


__all__ = ["Run", "RunConfig", "lr_at", "read_meta", "seed_everything", "set_lr"]
