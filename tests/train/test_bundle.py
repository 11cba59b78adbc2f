"""Bundling a trained set (autoencoder + memory model + generator) into a weights folder, and loading a world model
from such a folder: the models loaded are exactly the runs' exports, and the manifest hashes what was copied."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from model_testing import micro_config, perturbed

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.checkpoint import save_checkpoint
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import MANIFEST_FILE, WorldModel, sha256
from magworld.model.text import HashingTextEncoder
from magworld.train.weights import bundle


def fake_run(folder: Path, kind: str, module: torch.nn.Module, config) -> Path:
    """A run folder as run_stage leaves it: the final export, its log and its config."""
    save_checkpoint(folder / f"{kind}.safetensors", module, kind, config, extra={"step": 1})
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    (folder / "config.json").write_text(json.dumps({"stage": kind}) + "\n")
    return folder


def trained_set(tmp_path: Path):
    """A micro autoencoder, memory model and generator (perturbed off their init) and their run folders."""
    tc = micro_config()
    torch.manual_seed(0)
    ae_cfg = AutoencoderConfig(latent_channels=tc.latent_channels, channels=[8, 8, 8], groups=4)
    ae, mem = perturbed(Autoencoder(ae_cfg), 1), perturbed(MemoryModel(MemoryConfig(transformer=tc)), 2)
    gen = perturbed(Generator(GeneratorConfig(transformer=tc)), 3)
    runs = {kind: fake_run(tmp_path / kind, kind, m, m.cfg) for kind, m in
            (("autoencoder", ae), ("memory", mem), ("generator", gen))}
    return ae, mem, gen, runs


def test_bundle_writes_a_folder_that_loads_as_that_world(tmp_path):
    ae, mem, gen, runs = trained_set(tmp_path)
    weights = tmp_path / "weights"
    manifest = bundle(runs["generator"], weights_dir=weights, autoencoder=runs["autoencoder"], memory=runs["memory"])
    assert {"autoencoder.safetensors", "memory.safetensors", "generator.safetensors",
            "memory.metrics.jsonl", "generator.log.jsonl", MANIFEST_FILE} <= {p.name for p in weights.iterdir()}
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(weights / name)

    world = WorldModel.from_checkpoint(weights, text_encoder=HashingTextEncoder(16), device="cpu")
    for loaded, original in ((world.generator, gen), (world.memory_model, mem), (world.autoencoder, ae)):
        for (name, a), b in zip(loaded.state_dict().items(), original.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_folder_without_its_memory_model_is_a_clear_error(tmp_path):
    tc = micro_config()
    gen = Generator(GeneratorConfig(transformer=tc))
    fake_run(tmp_path, "generator", gen, gen.cfg)
    with pytest.raises(FileNotFoundError, match="autoencoder.safetensors is missing: pass the autoencoder run"):
        bundle(tmp_path, weights_dir=tmp_path / "weights")  # a fresh folder holds neither autoencoder nor memory
    assert not (tmp_path / "weights").exists()  # checked before anything was copied
    ae = Autoencoder(AutoencoderConfig(latent_channels=tc.latent_channels, channels=[8, 8, 8], groups=4))
    with pytest.raises(FileNotFoundError, match="memory.safetensors is missing: pass the memory run"):
        bundle(tmp_path, weights_dir=tmp_path / "weights", autoencoder=fake_run(tmp_path / "ae", "autoencoder", ae, ae.cfg))


def test_half_bundle_stores_float16_and_loads_the_rounded_weights(tmp_path):
    ae, mem, gen, runs = trained_set(tmp_path)
    trained_against = sha256(runs["memory"] / "memory.safetensors")
    save_checkpoint(runs["generator"] / "generator.safetensors", gen, "generator", gen.cfg,
                    extra={"step": 1, "memory_sha256": trained_against})
    full, half = tmp_path / "full", tmp_path / "half"
    bundle(runs["generator"], weights_dir=full, autoencoder=runs["autoencoder"], memory=runs["memory"])
    manifest = bundle(runs["generator"], weights_dir=half, autoencoder=runs["autoencoder"], memory=runs["memory"],
                      half=True, steps=2)
    meta = json.loads((half / "generator.json").read_text())
    assert meta["config"]["flow"]["steps"] == 2 and meta["extra"]["memory_sha256_float32"] == trained_against
    assert meta["extra"]["memory_sha256"] == sha256(half / "memory.safetensors") != trained_against
    for name in ("generator.safetensors", "memory.safetensors"):
        assert (half / name).stat().st_size < 0.6 * (full / name).stat().st_size, name
        assert manifest["files"][name]["sha256"] == sha256(half / name)
    assert sha256(half / "autoencoder.safetensors") == sha256(full / "autoencoder.safetensors")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the generator names the rounded memory model it now reads: no mismatch warning
        world = WorldModel.from_checkpoint(half, text_encoder=HashingTextEncoder(16), device="cpu")
    assert world.sampler.cfg.steps == 2
    for loaded, original in ((world.generator, gen), (world.memory_model, mem)):
        for (name, a), b in zip(loaded.state_dict().items(), original.state_dict().values()):
            assert a.dtype == b.dtype, name  # the model computes in float32 as before
            torch.testing.assert_close(a, b.half().to(b.dtype) if b.is_floating_point() else b, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(world.generator.state_dict().values(), gen.state_dict().values()))


def test_bundle_refuses_zero_steps(tmp_path):
    with pytest.raises(ValueError, match="steps must be a positive number"):
        bundle(tmp_path, weights_dir=tmp_path / "weights", steps=0)


def test_blend_mixes_two_generator_exports_by_weight(tmp_path):
    """blend: every tensor (1 - w) base + w tuned (w = 0 gives base, 1 gives tuned), tuned's config with the recipe
    in the sidecar; exports of different shapes are refused."""
    from magworld.model.checkpoint import CheckpointError, load_checkpoint
    from magworld.train.weights import blend

    tc = micro_config()
    base, tuned = (perturbed(Generator(GeneratorConfig(transformer=tc)), s) for s in (3, 4))
    paths = [save_checkpoint(tmp_path / f"{n}.safetensors", m, "generator", m.cfg,
                             extra={"step": 7, "psnr_mag": 21.5 + i}) for i, (n, m) in enumerate((("a", base), ("b", tuned)))]
    for weight in (0.0, 0.25, 1.0):
        mixed, meta = load_checkpoint(blend(*paths, tmp_path / f"mix{weight}", weight), "generator")
        for name, value in base.state_dict().items():
            torch.testing.assert_close(mixed[name], (1 - weight) * value + weight * tuned.state_dict()[name])
        assert meta["extra"]["blend"]["weight"] == weight
        assert meta["extra"]["step"] == 7 and "psnr_mag" not in meta["extra"]  # the tuned run's figures are not the blend's
        assert meta["extra"]["blend"]["tuned_eval"] == {"psnr_mag": 22.5}
    other = Generator(GeneratorConfig(transformer=micro_config(dim=24)))
    odd = save_checkpoint(tmp_path / "odd.safetensors", other, "generator", other.cfg)
    with pytest.raises(CheckpointError, match="not the same network"):
        blend(paths[0], odd, tmp_path / "bad", 0.5)
    with pytest.raises(ValueError, match="weight"):
        blend(*paths, tmp_path / "bad", 1.5)
