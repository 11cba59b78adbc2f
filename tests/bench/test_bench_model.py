"""The world model plugs into the revisit harness: a micro WorldModel (random weights) as the mag / full rows."""

import numpy as np
import torch

import magworld.model.pipeline as model
from magworld.bench import register_policy
from magworld.bench.mag_bench import RevisitBenchConfig, run
from magworld.bench.suite import SuiteConfig


def micro_world(spec):
    from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
    from magworld.model.config import TransformerConfig
    from magworld.model.generator import Generator, GeneratorConfig
    from magworld.model.memory_model import MemoryConfig, MemoryModel
    from magworld.model.text import HashingTextEncoder

    tc = TransformerConfig(dim=48, depth=2, heads=2, latent_channels=4, latent_size=4, patch_size=2, text_dim=16, time_freq_dim=32)
    torch.manual_seed(0)
    parts = (Generator(GeneratorConfig(transformer=tc)), MemoryModel(MemoryConfig(transformer=tc)),
             Autoencoder(AutoencoderConfig(latent_channels=4, channels=[8, 8, 8], groups=4)))
    return model.WorldModel(*parts, HashingTextEncoder(16), memory=spec.options["memory"], device="cpu", name=spec.label)


def test_world_model_rows(tmp_path):
    register_policy("test_micro_model", micro_world, overwrite=True)
    policies = [{"name": "test_micro_model", "label": m, "options": {"memory": m}} for m in ("mag", "full")]
    cfg = RevisitBenchConfig(name="m", out_dir=str(tmp_path), suite=SuiteConfig(resolution=32, styles=["city", "game"]), policies=policies,
                             quick=True, quick_per_style=1, bootstrap=10)
    rows = {r["policy"]: r for r in run(cfg)["table"]}
    for r in rows.values():
        assert np.isfinite(r["overall"]["gt_psnr"]["mean"]) and r["frames_per_s"] > 0
    assert 0 < rows["mag"]["cache_bytes_per_world"] < rows["full"]["cache_bytes_per_world"]  # mag keeps 1 of 3 frames
