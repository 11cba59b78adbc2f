"""Training on several processes with PyTorch's own engine: torchrun's process group, DDP or FSDP2 around the
stage's step (:class:`StepModule`), state gathered to rank 0 as one-process files (docs/notes/code.md).
"""

from __future__ import annotations

import atexit
import copy
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

PARALLEL_MODES = ("ddp", "fsdp")
TIMEOUT = timedelta(minutes=30)  # how long a collective waits (under DDP rank 0 evaluates while the others wait)


def torchrun_ranks() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's environment; None when not started by torchrun."""
    if "WORLD_SIZE" not in os.environ:
        return None
    return int(os.environ.get("RANK", 0)), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def join_process_group(device: torch.device) -> tuple[int, int]:
    """Connect this process to the others (once; ``nccl`` for CUDA devices, ``gloo`` otherwise) and return
    (rank, world size). A group the caller set up already is used as it is."""
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device, timeout=TIMEOUT)
        else:
            dist.init_process_group("gloo", timeout=TIMEOUT)
        atexit.register(leave_process_group)
    return dist.get_rank(), dist.get_world_size()


def leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each rank: rank 0 keeps ``seed`` (a one-process run's stream), others derive one."""
    return int(seed) if rank == 0 else int(np.random.SeedSequence([int(seed), rank]).generate_state(1)[0])


class StepModule(nn.Module):
    """A stage's step function as a module's forward: ``StepModule(model, step)(batch) == step(model, batch)``."""

    def __init__(self, model: nn.Module, step: Callable[[nn.Module, Any], dict[str, Any]]) -> None:
        super().__init__()
        self.model = model
        self.step = step

    def forward(self, batch: Any) -> dict[str, Any]:
        return self.step(self.model, batch)


def _is_sharded(tensor: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def _full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a shard (a collective: every rank calls it in the same order), else the tensor."""
    return tensor.full_tensor() if _is_sharded(tensor) else tensor


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with every sharded tensor gathered whole, on every rank (collective under FSDP)."""
    return {k: _full(v).detach() for k, v in module.state_dict().items()}


def plain_copy(module: nn.Module, build: Callable[[], nn.Module]) -> nn.Module:
    """A plain (unwrapped, unsharded) copy of ``module`` on its device: a deep copy, or for a sharded module
    ``build()`` (a fresh module of the same architecture; torch's random state is left as it was) loaded with the
    gathered weights — every rank must call it then."""
    if not any(_is_sharded(p) for p in module.parameters()):
        return copy.deepcopy(module)
    state = full_state_dict(module)
    with torch.random.fork_rng(devices=[]):
        twin = build()
    twin.load_state_dict(state)
    return twin.to(next(iter(state.values())).device)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards as units of their own: every child of an ``nn.ModuleList`` (the repeated blocks),
    deepest first (a unit must be sharded before the unit that contains it)."""
    units = [child for m in model.modules() if isinstance(m, nn.ModuleList) for child in m]
    return units[::-1]


class ParallelModel:
    """The trained model as the training loop sees it (docs/notes/code.md): call it with a batch to run the
    stage's step; ``optimizer`` is the stage's optimizer, now holding the parameters the wrapper trains."""

    def __init__(self, model: nn.Module, step: Callable[[nn.Module, Any], dict[str, Any]],
                 optimizer: torch.optim.Optimizer, mode: str, device: torch.device, find_unused: bool = False) -> None:
        if mode not in ("none", *PARALLEL_MODES):
            raise ValueError(f"run.parallel must be one of {PARALLEL_MODES}, got {mode!r}")
        if mode != "none" and not dist.is_initialized():
            raise RuntimeError(f"parallel mode {mode!r} needs a process group: launch with torchrun")
        self.model, self.optimizer, self.mode = model, optimizer, mode
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if mode != "none" else (0, 1)
        self.root = self.call = StepModule(model, step)
        if mode == "ddp":
            from torch.nn.parallel import DistributedDataParallel

            self.call = DistributedDataParallel(
                self.root, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=find_unused)
        elif mode == "fsdp":
            self._shard(device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def evaluates_here(self) -> bool:
        """Sharded models evaluate on every rank (their layers gather weights collectively); others on rank 0."""
        return self.mode == "fsdp" or self.is_main

    def __call__(self, batch: Any) -> dict[str, Any]:
        return self.call(batch)

    def _shard(self, device: torch.device) -> None:
        """fully_shard the units and the root; the optimizer's parameters (and any resumed state) follow."""
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        names = {id(p): n for n, p in self.model.named_parameters()}
        groups = [[names[id(p)] for p in g["params"]] for g in self.optimizer.param_groups]
        state = {names[id(p)]: s for p, s in self.optimizer.state.items()}
        mesh = init_device_mesh(device.type, (self.world_size,))
        for unit in shard_units(self.model):
            fully_shard(unit, mesh=mesh)
        fully_shard(self.root, mesh=mesh)
        self._swap_optimizer_params(groups, state)

    def _swap_optimizer_params(self, groups: list[list[str]], state: dict[str, dict[str, Any]]) -> None:
        """Point the optimizer at the sharded parameters; state tensors shaped like a parameter are sharded as it is."""
        from collections import defaultdict

        from torch.distributed.tensor import distribute_tensor

        params = dict(self.model.named_parameters())
        for group, group_names in zip(self.optimizer.param_groups, groups):
            group["params"] = [params[n] for n in group_names]
        sharded = defaultdict(dict)
        for name, entry in state.items():
            p = params[name]
            sharded[p] = {k: distribute_tensor(v.to(p.device), p.device_mesh, p.placements)
                          if torch.is_tensor(v) and v.shape == p.shape else v for k, v in entry.items()}
        self.optimizer.state = sharded

    def model_state(self) -> dict[str, torch.Tensor] | None:
        """The full state dict on rank 0 (gathered under FSDP: every rank must call), None elsewhere."""
        if self.mode != "fsdp":
            return self.model.state_dict() if self.is_main else None
        state = full_state_dict(self.model)  # a collective: every rank gathers, rank 0 keeps
        return {k: v.cpu() for k, v in state.items()} if self.is_main else None

    def optimizer_state(self) -> dict | None:
        """``optimizer.state_dict()`` as one process would have it, on rank 0 (gathered under FSDP), None elsewhere."""
        state = self.optimizer.state_dict()
        if self.mode == "fsdp":
            state["state"] = {pid: {k: _full(v) for k, v in entry.items()} for pid, entry in state["state"].items()}
        return state if self.is_main else None

    @contextmanager
    def evaluation(self) -> Iterator[None]:
        """Around evaluation and other calls outside the step (finalize): the root unit's weights gathered."""
        if self.mode != "fsdp":
            yield
            return
        self.root.unshard()
        try:
            yield
        finally:
            self.root.reshard()

    def mean(self, values: dict[str, Any]) -> dict[str, Any]:
        """Tensor values averaged over the ranks (for logging; every rank must call); other values as they are."""
        if self.world_size == 1:
            return values
        out = dict(values)
        for k, v in values.items():
            if torch.is_tensor(v):
                total = v.detach().float().clone()
                dist.all_reduce(total)
                out[k] = total / self.world_size
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when it is True on some rank (every rank must call)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([int(flag)], device=self._comm_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def check_same(self, value: int, what: str) -> None:
        """Raise on every rank unless all ranks hold the same ``value``."""
        if self.world_size == 1:
            return
        both = torch.tensor([value, -value], device=self._comm_device())
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        if int(both[0]) != -int(both[1]):
            raise RuntimeError(f"ranks disagree on {what} ({int(-both[1])}..{int(both[0])}): every process must see "
                               f"the same run.out_dir (a folder shared by all nodes) to resume together")

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
