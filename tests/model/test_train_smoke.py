"""Tiny-budget runs of both training stages through the same code as ``magworld train``: resumable, logged."""

import json

import pytest
import torch

from magworld.model.autoencoder import AutoencoderConfig
from magworld.model.config import transformer_preset
from magworld.model.memory_model import MemoryConfig
from magworld.model.pretrained import load_autoencoder, load_memory
from magworld.model.text import TextConfig
from magworld.train import autoencoder as ae_stage
from magworld.train import memory as memory_stage
from magworld.train.common import RunConfig
from magworld.train.data import WorldDataConfig


def _data() -> WorldDataConfig:
    return WorldDataConfig(styles=["indoor", "game"], pool_size=2, refresh_every=0)


def _run(out, steps) -> RunConfig:
    return RunConfig(out_dir=str(out), steps=steps, batch_size=2, log_every=1, eval_every=100, save_every=1,
                     warmup_steps=1, threads=1)


@pytest.fixture(scope="module")
def trained_ae(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    cfg = ae_stage.AutoencoderStageConfig(run=_run(out, 2), data=_data(), eval_per_style=2, stats_frames=4,
                                          model=AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4))
    metrics = ae_stage.train(cfg)
    assert set(metrics) == {"psnr_indoor", "psnr_game", "psnr_mean"}
    return out


def test_autoencoder_stage_logs_and_resumes(trained_ae):
    lines = [json.loads(x) for x in (trained_ae / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert load_autoencoder(trained_ae / "autoencoder.safetensors").cfg.channels == [8, 16, 16]
    cfg = ae_stage.AutoencoderStageConfig(run=_run(trained_ae, 3), data=_data(), eval_per_style=2, stats_frames=4,
                                          model=AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4))
    ae_stage.train(cfg)
    lines = [json.loads(x) for x in (trained_ae / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3]  # resumed at step 2, not restarted


def test_memory_stage_trains_and_exports(trained_ae, tmp_path):
    tiny = transformer_preset("tiny", dim=32, depth=1, heads=2)
    cfg = memory_stage.MemoryStageConfig(run=_run(tmp_path, 2), model=MemoryConfig(transformer=tiny), data=_data(),
                                         text=TextConfig(encoder="hashing", cache_dir=""), blocks=2, eval_clips=2,
                                         autoencoder=str(trained_ae / "autoencoder.safetensors"))
    metrics = memory_stage.train(cfg)
    assert {"psnr", "ssim", "psnr_autoencoder", "cache_bytes_per_block"} <= set(metrics)
    model = load_memory(tmp_path / "memory.safetensors")
    assert model.cfg.transformer.dim == 32 and not model.training
    per_block = 2 * 1 * 2 * tiny.tokens_per_frame * tiny.head_dim * 4  # k+v, 1 layer, 2 heads, 1 kept frame, fp32
    assert metrics["cache_bytes_per_block"] == per_block
    assert torch.isfinite(torch.tensor(metrics["psnr"]))
