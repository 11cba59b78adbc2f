"""Training on several processes (magworld.train.parallel): torchrun with 2 CPU processes (gloo) against one process.

The micro stage (distributed_micro.py) feeds each rank its slice of one global batch per step, so DDP and FSDP
must reproduce the one-process weights; a rank training alone on its slice must not. The real stages run one
step each inside a one-process group with DDP and with FSDP, so their step functions go through the wrappers.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

import distributed_micro as micro
from stage_testing import losses, metrics_lines
from test_dmd import dmd_config, micro as micro_paths  # noqa: F401  (the DMD tests' fixture)
from magworld.model.autoencoder import AutoencoderConfig
from magworld.model.checkpoint import load_into
from magworld.model.config import transformer_preset
from magworld.model.generator import GeneratorConfig
from magworld.model.memory_model import MemoryConfig
from magworld.model.text import TextConfig
from magworld.train import autoencoder as ae_stage
from magworld.train import generator as gen_stage
from magworld.train import memory as memory_stage
from magworld.train.loop import Placement, RunConfig
from magworld.train.data import WorldDataConfig
from magworld.train.parallel import rank_seed, shard_units

SCRIPT = Path(micro.__file__)
TIGHT = {"rtol": 0.0, "atol": 1e-6}


def torchrun(*runs: tuple[Path, int, str], procs: int = 2) -> None:
    """The micro stage's ``runs`` (out, steps, parallel), one after the other, in one torchrun of ``procs`` processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", str(SCRIPT),
           *(str(x) for run in runs for x in run)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("optim/")}


def assert_same(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], **(tol or TIGHT), msg=k)


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def loss_lines(out: Path) -> list[dict]:
    return [x for x in metrics_lines(out) if "loss" in x]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """One torchrun of 2 processes for both tests below (a start costs more than their steps): ``two``, 2 DDP steps
    from scratch; ``sharded``, 2 FSDP steps resuming ``sharded-start``, a one-process run at step 1."""
    root = tmp_path_factory.mktemp("two-processes")
    micro.train(root / "sharded-start", 1)
    shutil.copytree(root / "sharded-start", root / "sharded")
    torchrun((root / "two", 2, "ddp"), (root / "sharded", 3, "fsdp"))
    return root


def test_ddp_on_two_processes_equals_one_process_with_the_global_batch_and_resumes_on_one(two_processes, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(two_processes / "two", two)
    micro.train(one, 2)
    at_two = weights(one / "micro.safetensors")
    assert_same(weights(two / "micro.safetensors"), at_two)
    assert len(loss_lines(two)) == 2  # rank 0 alone logs
    alone = tmp_path / "alone"  # what rank 0 would learn from its half of the batch without averaging
    micro.train(alone, 2, share=micro.GLOBAL_BATCH // 2)
    assert max_diff(weights(alone / "micro.safetensors"), at_two) > 1e-3
    micro.train(one, 4)  # resume: one process continues each run (the DDP one saved at world size 2)
    micro.train(two, 4)
    assert_same(weights(two / "micro.safetensors"), weights(one / "micro.safetensors"))


def test_fsdp_on_two_processes_resumes_a_one_process_run_and_its_gathered_checkpoint_loads_in_one(two_processes,
                                                                                                  tmp_path):
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    shutil.copytree(two_processes / "sharded-start", one)
    shutil.copytree(two_processes / "sharded", sharded)  # two FSDP steps from the one-process checkpoint (weights, Adam)
    micro.train(one, 3)
    assert_same(weights(sharded / "micro.safetensors"), weights(one / "micro.safetensors"))
    net = micro.MicroNet(**micro.CONFIG)
    optimizer = torch.optim.AdamW(net.parameters())
    meta = load_into(net, sharded / "last.safetensors", "micro", config=micro.CONFIG, optimizer=optimizer)
    assert meta["extra"]["step"] == 3
    state = optimizer.state[net.embed.weight]
    assert state["exp_avg"].shape == net.embed.weight.shape and int(state["step"]) == 3  # gathered whole
    micro.train(one, 4)  # and a one-process run continues the sharded one exactly
    micro.train(sharded, 4)
    assert_same(weights(sharded / "micro.safetensors"), weights(one / "micro.safetensors"))


def test_rank_seeds_and_local_batches():
    assert rank_seed(7, 0) == 7 and len({rank_seed(7, r) for r in range(8)}) == 8
    placement = Placement(torch.device("cpu"), rank=1, world_size=4)
    assert placement.local_batch(16) == 4
    with pytest.raises(ValueError, match="multiple of 4"):
        placement.local_batch(10)
    net = micro.MicroNet()
    assert shard_units(net) == [net.blocks[1], net.blocks[0]]  # FSDP units: the repeated blocks, deepest first


def _data() -> WorldDataConfig:
    return WorldDataConfig(styles=["indoor", "game"], pool_size=2, refresh_every=0)


MICRO_AE = AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4)


def test_each_rank_renders_its_own_share(tmp_path):
    cfg = ae_stage.AutoencoderStageConfig(run=RunConfig(out_dir=str(tmp_path), batch_size=4), data=_data(),
                                          eval_per_style=2, model=MICRO_AE)
    frames = [next(ae_stage.build_stage(cfg, Placement(torch.device("cpu"), rank=r, world_size=2)).data(0))
              for r in (0, 1)]
    cfg.run.batch_size = 2
    alone = next(ae_stage.build_stage(cfg, Placement(torch.device("cpu"))).data(0))
    assert frames[0].shape[0] == frames[1].shape[0] == 2
    assert not torch.equal(frames[0], frames[1])
    assert torch.equal(frames[0], alone)  # rank 0 draws what one process draws (with the same batch)


@pytest.fixture
def one_process_group():
    """A process group of one (gloo, in this process): the stages wrap their model as under torchrun."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _run(out: Path, parallel: str) -> RunConfig:
    return RunConfig(out_dir=str(out), steps=1, batch_size=1, log_every=1, eval_every=0, save_every=1, warmup_steps=1,
                     threads=1, device="cpu", parallel=parallel)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_every_stage_steps_through_the_wrapper(one_process_group, tmp_path, parallel):
    tiny = transformer_preset("tiny", dim=32, depth=1, heads=2)
    text = TextConfig(encoder="hashing", cache_dir="")
    ae_cfg = ae_stage.AutoencoderStageConfig(run=_run(tmp_path / "ae", parallel), data=_data(), eval_per_style=2,
                                             stats_frames=4, model=MICRO_AE)
    assert math.isfinite(ae_stage.train(ae_cfg)["psnr_mean"])
    ae_path = str(tmp_path / "ae" / "autoencoder.safetensors")
    mem_cfg = memory_stage.MemoryStageConfig(run=_run(tmp_path / "mem", parallel), model=MemoryConfig(transformer=tiny),
                                             data=_data(), text=text, blocks=2, eval_clips=2, autoencoder=ae_path)
    assert math.isfinite(memory_stage.train(mem_cfg)["psnr"])
    gen_cfg = gen_stage.GeneratorStageConfig(
        run=_run(tmp_path / "gen", parallel), model=GeneratorConfig(transformer=tiny), data=_data(), text=text,
        autoencoder=ae_path, memory_model=str(tmp_path / "mem" / "memory.safetensors"), blocks=2, eval_clips=1,
        eval_context_blocks=1, max_offset_blocks=2, self_forcing=1.0 if parallel == "ddp" else 0.0,
        uncovered_weight=0.0)
    assert math.isfinite(gen_stage.train(gen_cfg)["psnr_mag"])
    for name in ("ae", "mem", "gen"):
        assert len(losses(tmp_path / name)) == 1 and all(map(math.isfinite, losses(tmp_path / name)))


def test_fsdp_generator_refuses_self_forcing(one_process_group, tmp_path):
    cfg = gen_stage.GeneratorStageConfig(run=_run(tmp_path, "fsdp"), data=_data(), self_forcing=0.5,
                                         text=TextConfig(encoder="hashing", cache_dir=""))
    with pytest.raises(ValueError, match="parallel=ddp"):
        gen_stage.build_stage(cfg, Placement(torch.device("cpu"), parallel="fsdp"))


def test_parallel_mode_is_checked():
    with pytest.raises(ValueError, match="run.parallel"):
        RunConfig(parallel="zero3")



def test_dmd_steps_under_ddp_including_critic_only_steps(micro_paths, one_process_group, tmp_path):
    """generator_every=2: the second step trains the critic alone, so DDP must find the generator's unused weights
    (else the third step fails: the second one's reduction never finished)."""
    from magworld.train import dmd

    cfg = dmd_config(micro_paths, tmp_path, 3, generator_every=2, run={"parallel": "ddp"})
    dmd.train(cfg)
    assert len(losses(tmp_path)) == 3 and all(map(math.isfinite, losses(tmp_path)))
    assert (tmp_path / "generator.safetensors").exists()


@pytest.mark.cuda
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_micro_stage_on_cuda_in_a_nccl_group_matches_the_cpu(tmp_path, parallel):
    torch.backends.cuda.matmul.allow_tf32 = False
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1,
                            device_id=torch.device("cuda", 0))
    try:
        cfg = micro.run_config(tmp_path / "cuda", 3, parallel)
        cfg.device = "cuda"
        from magworld.train.loop import run_stage, setup_device

        placement = setup_device(cfg)
        assert placement.device.type == "cuda" and placement.parallel == parallel
        run_stage(micro.build_stage(placement), cfg, placement, {})
    finally:
        dist.destroy_process_group()
    micro.train(tmp_path / "cpu", 3)
    assert_same(weights(tmp_path / "cuda" / "micro.safetensors"), weights(tmp_path / "cpu" / "micro.safetensors"),
                rtol=1e-4, atol=1e-5)
