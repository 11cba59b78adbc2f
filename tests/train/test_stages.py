"""Each training stage runs one optimisation step under ``device=cpu precision=bf16`` (autocast) with a micro
config and finishes with finite losses, so a device or dtype mismatch fails here, not on the first GPU."""

import math

import pytest
import torch

from stage_testing import losses, spy_steps
from magworld.model.autoencoder import AutoencoderConfig
from magworld.model.config import transformer_preset
from magworld.model.generator import GeneratorConfig
from magworld.model.memory_model import MemoryConfig
from magworld.model.text import TextConfig
from magworld.train import autoencoder as ae_stage
from magworld.train import generator as gen_stage
from magworld.train import memory as memory_stage
from magworld.train.loop import RunConfig
from magworld.train.data import WorldDataConfig

MICRO = transformer_preset("tiny", dim=32, depth=1, heads=2)
HASHING = TextConfig(encoder="hashing", cache_dir="")


def _data() -> WorldDataConfig:
    return WorldDataConfig(styles=["indoor", "game"], pool_size=2, refresh_every=0)


def _bf16(out, steps: int = 1) -> RunConfig:
    return RunConfig(out_dir=str(out), steps=steps, batch_size=1, log_every=1, eval_every=0, save_every=1,
                     warmup_steps=1, threads=1, device="cpu", precision="bf16")


def _trained(module, monkeypatch, cfg) -> tuple[list, dict]:
    """Train ``cfg`` with ``module.train``; (autocast dtypes its steps ran under, final metrics)."""
    seen = spy_steps(monkeypatch, module)
    return seen, module.train(cfg)


@pytest.fixture(scope="module")
def micro_ae(tmp_path_factory):
    """A micro autoencoder trained one bf16 step (the later stages use it: small convolutions are fast in bf16)."""
    out = tmp_path_factory.mktemp("autoencoder")
    cfg = ae_stage.AutoencoderStageConfig(run=_bf16(out), data=_data(), eval_per_style=2, stats_frames=4,
                                          model=AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4))
    with pytest.MonkeyPatch.context() as mp:
        return out, *_trained(ae_stage, mp, cfg)


def assert_one_bf16_step(out, seen, metrics, metric: str, export: str) -> None:
    """One step ran under bf16 autocast, logged a finite loss, evaluated finitely and exported the weights."""
    assert seen == [torch.bfloat16]
    assert len(losses(out)) == 1 and all(map(math.isfinite, losses(out)))
    assert math.isfinite(metrics[metric]) and (out / export).exists()


def test_autoencoder_stage_bf16_step(micro_ae):
    assert_one_bf16_step(*micro_ae, "psnr_mean", "autoencoder.safetensors")


@pytest.fixture(scope="module")
def micro_memory(micro_ae, tmp_path_factory):
    """A micro memory model trained one bf16 step on the micro autoencoder's latents."""
    out = tmp_path_factory.mktemp("memory")
    cfg = memory_stage.MemoryStageConfig(run=_bf16(out), model=MemoryConfig(transformer=MICRO), data=_data(),
                                         text=HASHING, blocks=2, eval_clips=2,
                                         autoencoder=str(micro_ae[0] / "autoencoder.safetensors"))
    with pytest.MonkeyPatch.context() as mp:
        return out, *_trained(memory_stage, mp, cfg)


def test_memory_stage_bf16_step(micro_memory):
    assert_one_bf16_step(*micro_memory, "psnr", "memory.safetensors")


@pytest.mark.parametrize("reproject", [False, True])
def test_generator_stage_bf16_step_with_self_forcing(micro_ae, micro_memory, tmp_path, monkeypatch, reproject):
    model = GeneratorConfig(transformer=MICRO, reproject=reproject)
    cfg = gen_stage.GeneratorStageConfig(run=_bf16(tmp_path), model=model,
                                         data=_data(),
                                         text=HASHING, autoencoder=str(micro_ae[0] / "autoencoder.safetensors"),
                                         memory_model=str(micro_memory[0] / "memory.safetensors"), blocks=2, eval_clips=1,
                                         eval_context_blocks=1, max_offset_blocks=2, self_forcing=1.0,
                                         uncovered_weight=1.0 if reproject else 0.0)
    seen, metrics = _trained(gen_stage, monkeypatch, cfg)
    assert seen == [torch.bfloat16]
    assert len(losses(tmp_path)) == 1 and all(map(math.isfinite, losses(tmp_path)))
    assert {"psnr_mag", "psnr_window", "psnr_full"} <= metrics.keys()
    assert all(math.isfinite(metrics[f"psnr_{p}"]) for p in ("mag", "window", "full"))
