"""``magworld bench soak`` and the speed bench's history curves (issue 13) on a micro random world model."""

import json

import numpy as np
import torch
from model_testing import micro_config, perturbed

from magworld.apps.speed import SoakConfig, SpeedBenchConfig, _finite_world, history_curve, history_table, soak
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import HashingTextEncoder


def micro_world(memory: str) -> WorldModel:
    torch.manual_seed(0)
    tc = micro_config()
    return WorldModel(perturbed(Generator(GeneratorConfig(transformer=tc, recall=2)), 1),
                      perturbed(MemoryModel(MemoryConfig(transformer=tc)), 2),
                      Autoencoder(AutoencoderConfig(latent_channels=4, channels=[8, 8, 8], groups=4)),
                      HashingTextEncoder(16), memory=memory, device="cpu")


def test_soak_records_memory_and_finiteness(tmp_path):
    world = micro_world("mag-recall")
    result = soak(SoakConfig(steps=8, every=4, out_dir=str(tmp_path), env_kwargs={"world_model": world}))
    assert [p["step"] for p in result["points"]] == [4, 8] and result["error"] is None and result["finite"]
    assert result["rss_ratio_last_vs_first"] > 0 and all(p["stored_frames"] >= 1 for p in result["points"])
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["points"][-1]["stored_bytes"] == result["points"][-1]["stored_bytes"]


def test_a_nan_in_the_store_is_found(tmp_path):
    world = micro_world("mag-recall")
    soak(SoakConfig(steps=3, every=3, out_dir=str(tmp_path), env_kwargs={"world_model": world}))

    class Env:  # the soak reads env.unwrapped.backend.world
        unwrapped = type("U", (), {"backend": type("B", (), {"world": world})})

    assert _finite_world(Env)
    keys, _ = world.cache.slot_tensors(0)
    with torch.inference_mode():  # the store was written under inference mode (the world's step)
        keys[-1, 0] = float("nan")  # a view of the store: the last slot's first layer
    assert not _finite_world(Env)


def test_history_curve_has_attended_stored_and_resident_memory():
    cfg = SpeedBenchConfig(backend="model", history_blocks=6, env_kwargs={"world_model": micro_world("mag-recall")})
    curve = history_curve(cfg, None)  # memory from the given world model
    assert {k: len(v) for k, v in curve.items()} == {"step_ms": 6, "cache_bytes": 6, "stored_bytes": 6, "rss_bytes": 6}
    assert curve["stored_bytes"][-1] >= curve["cache_bytes"][-1] > 0 and min(curve["rss_bytes"]) > 0
    table = history_table({"mag-recall": curve})
    assert "stored MiB" in table and "RSS MiB" in table and np.isfinite(curve["step_ms"]).all()
