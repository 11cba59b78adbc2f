"""WorldModel contracts on tiny random models: BlockWorld shapes, no NaN, uint8, snapshot/restore replays,
a batch of N worlds equals N single worlds, cache sizes per policy, clear errors; the bundled weights match
their manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_testing import micro_config, perturbed

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.checkpoint import CheckpointError, save_checkpoint
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import (GENERATOR_FILE, MANIFEST_FILE, WorldModel, load_generator,
                                     resolve_device, sha256)
from magworld.model.pretrained import WEIGHTS_DIR
from magworld.model.text import HashingTextEncoder
from magworld.protocol import BlockWorld

SIZE = 32  # micro latents 4x4, autoencoder /8


@pytest.fixture(scope="module")
def parts():
    tc = micro_config()
    torch.manual_seed(0)
    return (perturbed(Generator(GeneratorConfig(transformer=tc)), 1), perturbed(MemoryModel(MemoryConfig(transformer=tc)), 2),
            Autoencoder(AutoencoderConfig(latent_channels=tc.latent_channels, channels=[8, 8, 8], groups=4)))


def world(parts, memory="mag", **kw) -> WorldModel:
    gen, mem, ae = parts
    return WorldModel(gen, mem, ae, HashingTextEncoder(16), memory=memory, device=kw.pop("device", "cpu"), **kw)


def block(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 3, SIZE, SIZE, 3), dtype=np.uint8)
    poses = np.array([[[40.0 * i + 5 * k, 0.0, 60.0] for k in range(3)] for i in range(n)], dtype=np.float32)
    return frames, poses  # (N, 3, 32, 32, 3), (N, 3, 3)


def moved(poses, d_yaw):
    return poses + np.array([d_yaw, 0.0, 0.0], dtype=np.float32)


def test_speaks_block_world_and_generates_a_clean_uint8_block(parts):
    w = world(parts)
    _typed: BlockWorld = w  # noqa: F841  (static check of the protocol)
    assert isinstance(w.name, str) and all(callable(getattr(w, m)) for m in ("start", "memorize", "step", "cache_bytes"))
    frames, poses = block(2)
    w.start(frames, poses, ["a red city", "a forest"])
    latents = w.generate(moved(poses, 15), ["a red city, the camera pans right", ""]).latents
    assert latents.shape == (2, 3, 4, 4, 4) and torch.isfinite(latents).all()
    out = w.step(moved(poses, 30), ["a red city, the camera pans right", ""])
    assert out.shape == (2, 3, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert w.cache_frames() == 3 and w.cache_bytes() > 0


def test_snapshot_step_restore_step_is_identical(parts):
    w = world(parts, memory="window")
    frames, poses = block(2)
    w.start(frames, poses, ["x", "y"])
    w.step(moved(poses, 15), ["x", "y"])
    snap, size = w.snapshot(), w.cache_bytes()
    first = [w.step(moved(poses, 15 * k), ["x", "y"]) for k in (2, 3, 4)]
    w.restore(snap)
    assert w.cache_bytes() == size
    again = [w.step(moved(poses, 15 * k), ["x", "y"]) for k in (2, 3, 4)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("memory", ["mag", "full"])
def test_batch_of_worlds_equals_single_worlds(parts, memory):
    frames, poses = block(3)
    prompts = ["a", "b", ""]
    batch = world(parts, memory)
    batch.start(frames, poses, prompts, seeds=[7, 8, 9])
    batch.memorize(frames[:, ::-1].copy(), moved(poses, 15))
    got = [batch.generate(moved(poses, 15 * k), prompts).latents for k in (2, 3)]
    for i in range(3):
        one = world(parts, memory)
        one.start(frames[i:i + 1], poses[i:i + 1], prompts[i:i + 1], seeds=[7 + i])
        one.memorize(frames[i:i + 1, ::-1].copy(), moved(poses[i:i + 1], 15))
        for k, ref in zip((2, 3), got):
            torch.testing.assert_close(one.generate(moved(poses[i:i + 1], 15 * k), prompts[i:i + 1]).latents,
                                       ref[i:i + 1], atol=1e-5, rtol=1e-5)


def test_cache_sizes_per_policy(parts):
    frames, poses = block(1)
    sizes = {}
    for memory in ("mag", "window", "full"):
        w = world(parts, memory)
        w.start(frames, poses, ["s"])
        for k in range(1, 6):
            w.step(moved(poses, 15 * k), ["s"])
        sizes[memory] = (w.cache_frames(), w.cache_bytes())
    assert sizes["mag"][0] == 6 and sizes["full"][0] == 18 and sizes["window"][0] == 6
    assert sizes["full"][1] == 3 * sizes["mag"][1]


def test_text_is_encoded_once_per_prompt(parts):
    class Counting(HashingTextEncoder):
        calls = 0

        def encode(self, prompts):
            Counting.calls += len(prompts)
            return super().encode(prompts)

    gen, mem, ae = parts
    w = WorldModel(gen, mem, ae, Counting(16), device="cpu")
    frames, poses = block(2)
    w.start(frames, poses, ["c", "c"])
    for k in range(1, 4):
        w.step(moved(poses, 15 * k), ["c, pan", "c, pan"])
    assert Counting.calls == 2  # "c" and "c, pan"


def test_clear_errors(parts, tmp_path):
    with pytest.raises(ValueError, match="unknown memory policy"):
        world(parts, memory="lru")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            world(parts, device="cuda")
    w = world(parts)
    with pytest.raises(RuntimeError, match="call start"):
        w.step(np.zeros((1, 3, 3), np.float32), ["x"])
    frames, poses = block(1)
    w.start(frames, poses, ["x"])
    with pytest.raises(ValueError, match="poses must be"):
        w.step(poses[0], ["x"])  # (F, 3): the worlds axis is missing
    with pytest.raises(ValueError, match="1 worlds x 3 frames"):
        w.step(poses[:, :2], ["x"])
    with pytest.raises(ValueError, match="frames must be uint8"):
        w.start(frames.astype(np.float32), poses, ["x"])
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "nope.safetensors")
    gen, mem, ae = parts
    path = save_checkpoint(tmp_path / "gen", gen, "generator", gen.cfg)
    assert load_generator(path).cfg == gen.cfg
    wrong = save_checkpoint(tmp_path / "mem", mem, "memory", mem.cfg)
    with pytest.raises(CheckpointError, match="not a 'generator'"):
        load_generator(wrong)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_generator(path)
    other = Generator(GeneratorConfig(transformer=micro_config(dim=24)))
    with pytest.raises(CheckpointError, match="shapes differ"):
        WorldModel(other, mem, ae, HashingTextEncoder(16), device="cpu")


def test_bundled_weights_match_their_manifest():
    if not (WEIGHTS_DIR / MANIFEST_FILE).exists():
        pytest.fail(f"{WEIGHTS_DIR / MANIFEST_FILE} is missing: the bundled generator must ship with its manifest")
    manifest = json.loads((WEIGHTS_DIR / MANIFEST_FILE).read_text())
    assert GENERATOR_FILE in manifest["files"]
    total = 0
    for name, entry in manifest["files"].items():
        path = WEIGHTS_DIR / name
        assert path.exists(), f"bundled file {name} listed in the manifest is missing"
        assert sha256(path) == entry["sha256"], f"{name} differs from the manifest (retrained without updating it?)"
        total += path.stat().st_size
    assert total <= 50 * 2 ** 20
    meta = json.loads((WEIGHTS_DIR / GENERATOR_FILE).with_suffix(".json").read_text())
    assert meta["extra"]["memory_sha256"] == manifest["files"]["memory.safetensors"]["sha256"]
    gen = load_generator(WEIGHTS_DIR / GENERATOR_FILE)
    assert gen.cfg.transformer.dim == 256 and gen.cfg.flow.steps == 1  # the wide16 shape, sampled in 1 step
