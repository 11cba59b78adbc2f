"""A micro training stage for the distributed tests, runnable under torchrun or in the test process.

``torchrun --standalone --nproc_per_node=2 tests/train/distributed_micro.py OUT STEPS ddp|fsdp [OUT STEPS ...]`` trains
it through :func:`magworld.train.loop.run_stage`, one run after the other in the same process group. The data is one global batch per step, a function of the step alone, and
each rank takes its slice of it: the same global batch as a one-process run, so DDP/FSDP averaging must give the
one-process weights. The loss goes through a method (``MicroNet.loss``), not ``forward``, like the memory stage.
"""

from __future__ import annotations

import sys
from itertools import count
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere in the checkout

from magworld.train.loop import Placement, RunConfig, Stage, run_stage, setup_device  # noqa: E402

GLOBAL_BATCH = 8
CONFIG = {"features": 6, "blocks": 2}


class MicroNet(nn.Module):
    """Embedding, two residual blocks (FSDP units), a root parameter and a head."""

    def __init__(self, features: int = 6, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(4, features)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(features, features), nn.Tanh()) for _ in range(blocks))
        self.bias = nn.Parameter(torch.zeros(features))
        self.head = nn.Linear(features, 1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.bias
        for block in self.blocks:
            h = h + block(h)
        return nn.functional.mse_loss(self.head(h), y)


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, 4, generator=g)
    return x, x.sum(1, keepdim=True).sin() + 0.1 * torch.randn(GLOBAL_BATCH, 1, generator=g)


def run_config(out: str | Path, steps: int, parallel: str = "ddp") -> RunConfig:
    return RunConfig(out_dir=str(out), steps=steps, batch_size=GLOBAL_BATCH, lr=0.05, warmup_steps=1, log_every=1,
                     eval_every=0, save_every=1, threads=1, device="cpu", parallel=parallel)


def build_stage(placement: Placement, share: int | None = None) -> Stage:
    """The micro stage; ``share`` (tests) takes that many samples per step instead of this rank's slice."""
    torch.manual_seed(0)
    model = MicroNet(**CONFIG).to(placement.device)
    local = placement.local_batch(GLOBAL_BATCH) if share is None else share
    first = placement.rank * local

    def data(start: int):
        for step in count(start):
            x, y = global_batch(step)
            # this rank's slice of the global batch, on its device
            yield x[first:first + local].to(placement.device), y[first:first + local].to(placement.device)

    return Stage(kind="micro", model=model, model_config=CONFIG,
                 optimizer=torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.01), data=data,
                 step=lambda net, b: {"loss": net.loss(*b)}, evaluate=lambda: {"done": 1.0})


def train(out: str | Path, steps: int, parallel: str = "ddp", share: int | None = None) -> dict:
    cfg = run_config(out, steps, parallel)
    placement = setup_device(cfg)
    return run_stage(build_stage(placement, share), cfg, placement, {"steps": steps})


if __name__ == "__main__":
    args = sys.argv[1:]
    for out, steps, parallel in zip(args[::3], args[1::3], args[2::3]):
        train(out, int(steps), parallel)
