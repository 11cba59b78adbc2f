"""MAGWorld-v1 with the bounded memories of issue 13 (mag-ring, mag-recall) on a micro random world model: info
reports attended and stored memory, state snapshots and state files cover the recall store and replay bit for bit."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from model_testing import micro_config, perturbed

import magworld.envs  # noqa: F401
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import HashingTextEncoder

ACTIONS = (2, 2, 2, 3, 1, 1, 4, 6, 2, 2, 2, 1, 5, 1, 1, 1)  # pans, tilts and zooms around: many views, a revisit or two


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    micro = micro_config()
    return (perturbed(Generator(GeneratorConfig(transformer=micro, recall=2, ring=3)), 1),
            perturbed(MemoryModel(MemoryConfig(transformer=micro)), 2),
            Autoencoder(AutoencoderConfig(latent_channels=4, channels=[8, 8, 8], groups=4)))


def make(parts, memory):
    gen, mem, ae = parts
    world = WorldModel(gen, mem, ae, HashingTextEncoder(16), memory=memory, device="cpu")
    return gym.make("MAGWorld-v1", backend="model", world_model=world, max_episode_steps=-1).unwrapped


def test_info_reports_attended_and_stored_memory(parts):
    env = make(parts, "mag-recall")
    env.reset(seed=0)
    for a in ACTIONS:
        *_, info = env.step(a)
    assert info["memory"] == "mag-recall" and info["cache_frames"] == 1 + 1 + 2  # sink + last block + K
    assert info["stored_frames"] > info["cache_frames"] and info["stored_bytes"] > info["cache_bytes"] > 0
    assert info["stored_bytes"] * info["cache_frames"] == info["cache_bytes"] * info["stored_frames"]
    ring = make(parts, "mag-ring")
    ring.reset(seed=0)
    for a in ACTIONS:
        *_, info = ring.step(a)
    assert info["cache_frames"] == info["stored_frames"] == 1 + 3 and info["cache_bytes"] == info["stored_bytes"]


@pytest.mark.parametrize("memory", ["mag-recall", "mag-ring"])
def test_state_and_state_file_cover_the_store_and_replay_bit_for_bit(parts, memory, tmp_path):
    env = make(parts, memory)
    env.reset(seed=4)
    for a in ACTIONS[:10]:
        env.step(a)
    state = env.get_state()
    path = env.save_state(tmp_path / "s.safetensors")
    expected = [env.step(a) for a in ACTIONS[10:]]
    env.set_state(state)
    again = [env.step(a) for a in ACTIONS[10:]]
    other = make(parts, memory)
    other.reset(seed=99)
    other.load_state(path)
    from_file = [other.step(a) for a in ACTIONS[10:]]
    for e, a, f in zip(expected, again, from_file):
        assert np.array_equal(e[0], a[0]) and np.array_equal(e[0], f[0])
        assert e[4]["stored_bytes"] == a[4]["stored_bytes"] == f[4]["stored_bytes"]
        assert e[4]["cache_frames"] == f[4]["cache_frames"]
    mag = make(parts, "mag")
    mag.reset(seed=4)
    with pytest.raises(ValueError, match=f"memory='{memory}', this env has backend='model', memory='mag'"):
        mag.load_state(path)


def test_unknown_memory_policy_names_the_choices():
    with pytest.raises(ValueError, match="unknown memory policy 'recall'; choose one of .*mag-ring, mag-recall"):
        gym.make("MAGWorld-v1", backend="model", memory="recall")
