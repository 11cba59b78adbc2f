"""The one training loop every stage runs (:func:`run_stage` on a :class:`Stage`), and what it needs: seeding, device
and precision (:func:`setup_device`), the run folder (:class:`Run`); docs/notes/code.md.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from magworld.model.checkpoint import load_into, save_checkpoint
from magworld.model.pipeline import resolve_device

from .parallel import PARALLEL_MODES, ParallelModel, join_process_group, rank_seed, torchrun_ranks

PRECISIONS = ("fp32", "bf16")


@dataclass
class RunConfig:
    """Where a run writes, how long it lasts and where it computes; shared by every stage."""

    out_dir: str = "runs/default"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    schedule_steps: int = 0  # length of the cosine decay; 0 = steps. Set it to the first run's steps when resuming
    #   with a larger run.steps, so the lr stays on that schedule (at its 10 % floor) instead of rising again
    log_every: int = 25  # 0 = never
    eval_every: int = 250  # 0 = no periodic evaluation (the final one still runs)
    save_every: int = 50  # 0 = only at the end (and when the time budget runs out)
    threads: int = 1  # torch threads per process (one is fastest for the bundled size on a shared 2-core CPU)
    resume: bool = True
    max_minutes: float = 45.0  # stop (and save) after this wall time; 0 = no limit
    device: str = "auto"  # auto (CUDA when available, else CPU) | cpu | cuda[:N]
    precision: str = "fp32"  # fp32 | bf16 (autocast; weights and optimizer state stay fp32)
    parallel: str = "ddp"  # under torchrun: ddp (replicas, gradients averaged) | fsdp (sharded); one process: neither

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"run.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(f"run.parallel must be one of {PARALLEL_MODES}, got {self.parallel!r}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"run.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        for name in ("steps", "warmup_steps", "schedule_steps", "log_every", "eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"run.{name} must be >= 0 (0 turns it off where it is an interval), "
                                 f"got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ValueError(f"run.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class Placement:
    """Where a run computes: its device and precision, and (under torchrun) its rank among the processes."""

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world_size: int = 1
    parallel: str = "none"  # none (one process) | ddp | fsdp (a process group is up)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, shows progress and writes files."""
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """``seed`` on rank 0, a different seed on each other rank (so each renders its own clips)."""
        return rank_seed(seed, self.rank)

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of the global ``run.batch_size``."""
        if batch_size % self.world_size:
            raise ValueError(f"run.batch_size={batch_size} is the global batch and must divide evenly over "
                             f"{self.world_size} processes; use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def autocast(self) -> ContextManager:
        """bf16 autocast on the run's device when ``precision == "bf16"``, else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def generator(self, seed: int) -> torch.Generator:
        """A random stream on the run's device (noise and timesteps are drawn where they are used), this rank's own."""
        return torch.Generator(device=self.device).manual_seed(self.rank_seed(seed))

    def streams(self, seed: int, start: int) -> tuple[np.random.Generator, torch.Generator]:
        """A stage's random streams from step ``start`` on (a resumed run draws anew from there), this rank's own:
        numpy for its choices, the device's for noise and times."""
        return np.random.default_rng([self.rank_seed(seed), start]), self.generator(seed * 100_003 + start)


def setup_device(cfg: RunConfig) -> Placement:
    """Threads, seeds, device and precision of a run: the one place they are decided. Under torchrun (or in a
    process group the caller set up) the process also joins the group and computes on its local device
    (``cuda:LOCAL_RANK`` when CUDA is used). Every rank seeds torch alike, so all start from the same weights."""
    torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ranks = torchrun_ranks()
    if ranks is None and not torch.distributed.is_initialized():
        return Placement(resolve_device(cfg.device), cfg.precision)
    local = ranks[2] if ranks is not None else 0
    if cfg.device.startswith("cuda:") and ranks is not None and ranks[1] > 1:
        raise ValueError(f"run.device={cfg.device!r} would put every process on one GPU; under torchrun use "
                         f"run.device=cuda (or auto): each process takes cuda:LOCAL_RANK")
    device = resolve_device(cfg.device)
    if device.type == "cuda" and cfg.device in ("auto", "cuda"):
        device = torch.device("cuda", local)
    rank, world = join_process_group(device)
    return Placement(device, cfg.precision, rank, world, cfg.parallel)


def lr_at(step: int, cfg: RunConfig) -> float:
    """Linear warm-up then cosine decay to 10% of ``cfg.lr`` at ``cfg.schedule_steps`` (0: ``cfg.steps``), then flat."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    length = cfg.schedule_steps or cfg.steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, length - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * progress)))


def every(interval: int, step: int) -> bool:
    """True on multiples of ``interval``; an interval of 0 never fires."""
    return interval > 0 and step % interval == 0


class Run:
    """A run folder: ``last.safetensors`` (+ ``.json``) for resuming, ``metrics.jsonl``, ``config.json``."""

    def __init__(self, cfg: RunConfig, kind: str, stage_config: Any, main: bool = True) -> None:
        self.cfg, self.kind, self.main = cfg, kind, main  # only the main process (rank 0) writes
        self.dir = Path(cfg.out_dir)
        self.checkpoint = self.dir / "last.safetensors"
        self.metrics = self.dir / "metrics.jsonl"
        self.start_time = time.time()
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "config.json").write_text(json.dumps(stage_config, indent=2, default=str))

    def resume(self, module: nn.Module, model_config: Any, optimizer: torch.optim.Optimizer) -> int:
        """Load ``last`` if it exists and resuming is on; returns the step to continue from."""
        if not (self.cfg.resume and self.checkpoint.exists()):
            return 0
        meta = load_into(module, self.checkpoint, self.kind, config=model_config, optimizer=optimizer)
        step = int(meta["extra"].get("step", 0))
        if self.main:
            print(f"resuming {self.checkpoint} at step {step}")
        return step

    def save(self, state: dict | None, model_config: Any, optimizer_state: dict | None, step: int,
             extra: dict | None = None) -> None:
        """Write ``last`` from full state dicts (None off the main process: nothing is written)."""
        if self.main:
            save_checkpoint(self.checkpoint, state, self.kind, model_config, extra={"step": step, **(extra or {})},
                            optimizer=optimizer_state)

    def log(self, step: int, **values: Any) -> None:
        if not self.main:
            return
        record = {"step": step, "time_s": round(time.time() - self.start_time, 2), **values}
        with self.metrics.open("a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")

    def out_of_time(self) -> bool:
        return self.cfg.max_minutes > 0 and time.time() - self.start_time > 60 * self.cfg.max_minutes

    def export(self, state: dict | None, model_config: Any, name: str, extra: dict | None = None) -> Path:
        """Write inference weights (no optimiser state) as ``<run>/<name>.safetensors`` + JSON (main process only)."""
        path = self.dir / f"{name}.safetensors"
        return save_checkpoint(path, state, self.kind, model_config, extra=extra) if self.main else path


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module | Sequence[nn.Module],
                   max_grad_norm: float | None = 1.0) -> list[torch.Tensor | None]:
    """Backpropagate ``loss`` and update, gradients clipped to ``max_grad_norm`` over ``module`` or per module of a
    sequence; returns each part's norm before clipping (0-d, on the device), None for a part without gradients."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norms: list[torch.Tensor | None] = []
    limit = float("inf") if max_grad_norm is None else max_grad_norm  # inf: measure, do not clip
    for part in ([module] if isinstance(module, nn.Module) else module):
        params = [p for p in part.parameters() if p.grad is not None]
        norms.append(torch.nn.utils.clip_grad_norm_(params, limit).detach() if params else None)
    optimizer.step()
    return norms


@dataclass
class Stage:
    """What a training stage gives :func:`run_stage`."""

    kind: str  # checkpoint kind and the export's file name (<run>/<kind>.safetensors)
    model: nn.Module  # the trained module, on the run's device
    model_config: Any  # saved in every checkpoint's sidecar; a resumed checkpoint must match it
    optimizer: torch.optim.Optimizer
    data: Callable[[int], Iterator[Any]]  # start step -> endless batches (streams seeded from the start step)
    step: Callable[[nn.Module, Any], dict[str, Any]]  # (wrapped model, batch) -> {"loss": scalar, other logged values}
    evaluate: Callable[[], dict[str, float]]  # held-out metrics of the current weights
    max_grad_norm: float | None = 1.0
    unit: str = "samples"  # what run.batch_size counts, logged as <unit>_per_s
    label: str = ""  # progress-bar title (default: kind)
    eval_at_start: bool = False  # also evaluate the starting weights of a fresh run (logged at step 0)
    finalize: Callable[[], None] | None = None  # runs after the last step, before the final evaluation and export
    extra: dict = field(default_factory=dict)  # stored in every checkpoint and export
    keep_every: int = 0  # also export <run>/step_NNNNN.safetensors every this many steps (0 = never)
    clip_groups: tuple[nn.Module, ...] = ()  # clip these modules' gradients separately (default: model as a whole)
    clip_names: tuple[str, ...] = ()  # their names in the log (grad_norm_<name>; one group: grad_norm)
    after_step: Callable[[int], None] | None = None  # after each update, with the steps done (e.g. an EMA update)
    partial_steps: bool = False  # some steps leave some parameters without gradients (DDP must look for them)


def _logged(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.item() if torch.is_tensor(v) else v for k, v in values.items()}


def run_stage(stage: Stage, cfg: RunConfig, placement: Placement, stage_config: dict) -> dict[str, float]:
    """Train ``stage`` for ``cfg.steps`` steps (resuming ``last`` in ``cfg.out_dir``), export it, return the final
    held-out metrics (on the processes that evaluate: all of them under FSDP, rank 0 otherwise; {} elsewhere)."""
    run = Run(cfg, stage.kind, stage_config, main=placement.is_main)
    start = run.resume(stage.model, stage.model_config, stage.optimizer)
    model = ParallelModel(stage.model, stage.step, stage.optimizer, placement.parallel, placement.device,
                          find_unused=stage.partial_steps)  # the step around the model: DDP, FSDP or itself
    model.check_same(start, "the step to resume from")
    optimizer = model.optimizer
    batches = stage.data(start)
    metrics: dict[str, float] = {}
    evaluated_at: int | None = None

    def evaluate(step: int) -> dict[str, float]:
        nonlocal evaluated_at
        evaluated_at = step
        if not model.evaluates_here:
            return {}
        with placement.autocast(), model.evaluation():
            result = stage.evaluate()
        run.log(step, **result)
        return result

    if stage.eval_at_start and start == 0 and cfg.eval_every > 0:  # the starting point of the run
        metrics = evaluate(0)
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=stage.label or stage.kind,
               disable=not placement.is_main)
    began = time.time()
    done = start
    grad_norms: dict[str, torch.Tensor] = {}  # per clip group, the norm before clipping of its latest step with gradients
    norm_names = [f"grad_norm_{n}" for n in stage.clip_names] if stage.clip_names else ["grad_norm"]
    for step in bar:
        for group in optimizer.param_groups:  # the schedule's lr, times the group's lr_scale where it has one
            group["lr"] = lr_at(step, cfg) * group.get("lr_scale", 1.0)
        with placement.autocast():
            losses = model(next(batches))
        norms = optimizer_step(optimizer, losses["loss"], stage.clip_groups or stage.model, stage.max_grad_norm)
        grad_norms.update({n: v for n, v in zip(norm_names, norms) if v is not None})  # a group's latest norm
        done = step + 1
        if stage.after_step is not None:
            stage.after_step(done)
        if every(cfg.log_every, done):
            logged = _logged(model.mean(losses))  # the loss of the global batch
            rate = (done - start) * cfg.batch_size / max(1e-6, time.time() - began)
            run.log(done, **logged, **_logged(grad_norms), lr=optimizer.param_groups[0]["lr"], **{f"{stage.unit}_per_s": rate})
            bar.set_postfix(loss=f"{logged['loss']:.4f}")
        if every(cfg.eval_every, done):
            metrics = evaluate(done)
            if placement.is_main:
                bar.write(f"step {done}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        if every(stage.keep_every, done):
            run.export(model.model_state(), stage.model_config, f"step_{done:05d}", extra={"step": done, **stage.extra})
        out_of_time = cfg.max_minutes > 0 and model.any(run.out_of_time())  # all ranks stop at the same step
        if every(cfg.save_every, done) or done == cfg.steps or out_of_time:
            run.save(model.model_state(), stage.model_config, model.optimizer_state(), done, stage.extra)
        if out_of_time:
            if placement.is_main:
                bar.write(f"stopping at step {done}: max_minutes={cfg.max_minutes} reached (resume to continue)")
            break
    bar.close()
    if stage.finalize is not None:
        with model.evaluation():
            stage.finalize()
        evaluated_at = None
    if evaluated_at != done:
        metrics = evaluate(done)
    path = run.export(model.model_state(), stage.model_config, stage.kind, extra={"step": done, **stage.extra, **metrics})
    if placement.is_main:
        print(f"{stage.kind}: held-out {metrics}\nwrote {path}")
    model.barrier()  # the files are written before any process returns
    return metrics


def train_stage(build: Callable[[Any, Placement], Stage], cfg: Any) -> dict[str, float]:
    """Run the stage ``build(cfg, placement)`` makes, on the device and processes ``cfg.run`` asks for."""
    placement = setup_device(cfg.run)
    return run_stage(build(cfg, placement), cfg.run, placement, asdict(cfg))
