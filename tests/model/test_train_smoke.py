"""Tiny-budget runs of the three training stages through the same code as ``magworld train``: resumable, logged."""

import json

import numpy as np

import pytest
import torch

from magworld.model.autoencoder import AutoencoderConfig
from magworld.model.config import transformer_preset
from magworld.model.generator import GeneratorConfig
from magworld.model.memory_model import MemoryConfig
from magworld.model.pretrained import load_autoencoder, load_memory
from magworld.model.text import TextConfig
from magworld.train import autoencoder as ae_stage
from magworld.train import generator as gen_stage
from magworld.train import memory as memory_stage
from magworld.train.loop import RunConfig
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


def test_autoencoder_resume_of_a_finished_run_reexports(tmp_path):
    cfg = ae_stage.AutoencoderStageConfig(run=_run(tmp_path, 1), data=_data(), eval_per_style=2, stats_frames=4,
                                          model=AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4))
    ae_stage.train(cfg)
    (tmp_path / "autoencoder.safetensors").unlink()
    metrics = ae_stage.train(cfg)  # nothing left to train: evaluate and export again
    assert set(metrics) == {"psnr_indoor", "psnr_game", "psnr_mean"}
    assert load_autoencoder(tmp_path / "autoencoder.safetensors").cfg.channels == [8, 16, 16]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1]


TINY = transformer_preset("tiny", dim=32, depth=1, heads=2)
HASHING = TextConfig(encoder="hashing", cache_dir="")


@pytest.fixture(scope="module")
def trained_memory(trained_ae, tmp_path_factory):
    out = tmp_path_factory.mktemp("memory")
    cfg = memory_stage.MemoryStageConfig(run=_run(out, 2), model=MemoryConfig(transformer=TINY), data=_data(),
                                         text=HASHING, blocks=2, eval_clips=2,
                                         autoencoder=str(trained_ae / "autoencoder.safetensors"))
    return out, memory_stage.train(cfg)


def test_memory_stage_trains_and_exports(trained_memory):
    out, metrics = trained_memory
    assert {"psnr", "ssim", "psnr_autoencoder", "cache_bytes_per_block"} <= set(metrics)
    model = load_memory(out / "memory.safetensors")
    assert model.cfg.transformer.dim == 32 and not model.training
    per_block = 2 * 1 * 2 * TINY.tokens_per_frame * TINY.head_dim * 4  # k+v, 1 layer, 2 heads, 1 kept frame, fp32
    assert metrics["cache_bytes_per_block"] == per_block
    assert torch.isfinite(torch.tensor(metrics["psnr"]))


def test_rollout_eval_scores_memory_only_pixels_when_there_are_some(trained_ae, trained_memory, tmp_path, monkeypatch):
    """Where a held-out clip has memory-only pixels, ``psnr_memory_only_<policy>`` is a finite PSNR of them (random
    training clips rarely revisit, so the region is planted here: half of every scored frame)."""
    from magworld.train import common

    def half(poses, context_frames, size):
        mask = np.zeros((*poses.shape[:2], size, size), dtype=bool)
        mask[:, context_frames:, :, : size // 2] = True
        return mask

    monkeypatch.setattr(common, "memory_only_of_context", half)
    run = _run(tmp_path, 1)
    run.eval_every = 0
    cfg = gen_stage.GeneratorStageConfig(run=run, model=GeneratorConfig(transformer=TINY), data=_data(), text=HASHING,
                                         autoencoder=str(trained_ae / "autoencoder.safetensors"),
                                         memory_model=str(trained_memory[0] / "memory.safetensors"), blocks=2,
                                         eval_clips=1, eval_context_blocks=1, max_offset_blocks=2,
                                         self_forcing=0.0, uncovered_weight=0.0)
    metrics = gen_stage.train(cfg)
    assert np.isfinite(metrics["psnr_memory_only_mag"]) and 0 < metrics["psnr_memory_only_mag"] <= 100


def test_generator_stage_with_eval_every_zero(trained_ae, trained_memory, tmp_path):
    """eval_every=0 means no periodic evaluation: the run trains, evaluates once at the end and exports."""
    run = _run(tmp_path, 2)
    run.eval_every = 0
    cfg = gen_stage.GeneratorStageConfig(run=run, model=GeneratorConfig(transformer=TINY), data=_data(), text=HASHING,
                                         autoencoder=str(trained_ae / "autoencoder.safetensors"),
                                         memory_model=str(trained_memory[0] / "memory.safetensors"), blocks=2,
                                         eval_clips=1, eval_context_blocks=1, max_offset_blocks=2, keep_every=1,
                                         self_forcing=0.0, uncovered_weight=0.0)
    metrics = gen_stage.train(cfg)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert [x["step"] for x in lines if "psnr_mag" in x] == [2]  # no step-0 or periodic evaluation
    assert {"psnr_mag", "psnr_window", "psnr_full", "psnr_revisit_mag", "psnr_memory_only_mag"} <= set(metrics)
    assert (tmp_path / "generator.safetensors").exists() and (tmp_path / "step_00001.safetensors").exists()
    assert json.loads((tmp_path / "generator.json").read_text())["extra"]["step"] == 2
