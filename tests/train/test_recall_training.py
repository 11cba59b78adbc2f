"""Training the generator to read mag-recall memory (issue 13): the frames each block attends to in the parallel
training pass are exactly the frames the run-time store recalls for the same clip, and the loss trains on them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from model_testing import micro_config, perturbed

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.cache import KVCache
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.text import HashingTextEncoder
from magworld.protocol import play_blocks
from magworld.train.common import attended_frames, generator_loss
from magworld.train.generator import GeneratorStageConfig
from magworld.world import Pose, Trajectory, poses_array
from magworld.world.actions import ACTION_INDEX

OUT_AND_BACK = ["pan_right"] * 4 + ["tilt_up", "zoom_out"] + ["pan_left"] * 5 + ["tilt_down"] * 2 + ["pan_right"] * 2


def clip_poses() -> np.ndarray:
    """(1, 16 blocks, 3, 3) poses: out, up, zoomed, back past the start and round again (revisits of early views)."""
    actions = tuple(ACTION_INDEX[a] for a in OUT_AND_BACK)
    return poses_array(Trajectory("test", Pose(10.0, 0.0, 60.0), actions).frame_poses())[None]


@pytest.fixture(scope="module")
def parts():
    tc = micro_config()
    return (perturbed(Generator(GeneratorConfig(transformer=tc)), 0), perturbed(MemoryModel(MemoryConfig(transformer=tc)), 1),
            Autoencoder(AutoencoderConfig(latent_channels=tc.latent_channels, channels=[8, 8, 8], groups=4)))


@pytest.mark.parametrize("recall", [1, 3])
def test_training_attended_set_equals_the_run_time_one(parts, recall, monkeypatch):
    gen, mem, ae = parts
    poses = clip_poses()  # (1, B, 3, 3)
    blocks = poses.shape[1]
    trained = attended_frames(gen.cfg, "mag-recall", torch.from_numpy(poses.reshape(1, -1, 3)), recall)  # (1, F, F)

    read: dict[int, list[int]] = {}
    original = KVCache.recalled

    def recording(cache, reference, pose):
        out = original(cache, reference, pose)
        read[reference] = out[2][0][out[3][0]].tolist()
        return out

    monkeypatch.setattr(KVCache, "recalled", recording)
    runtime = Generator(GeneratorConfig(transformer=gen.cfg.transformer, recall=recall))
    runtime.load_state_dict(gen.state_dict())
    world = WorldModel(runtime, mem, ae, HashingTextEncoder(16), memory="mag-recall", device="cpu")
    truth = np.random.default_rng(0).integers(0, 256, (1, blocks, 3, 32, 32, 3), dtype=np.uint8)
    play_blocks(world, truth, poses, ["c"], [["c"] * blocks], given_blocks=9)  # 9 memorized blocks, then generated
    for b in range(1, blocks):
        assert read[3 * b] == torch.nonzero(trained[0, 3 * b]).flatten().tolist(), b
    gaps = [np.diff(read[3 * b]).max() for b in range(2, blocks)]
    assert max(gaps) > 3  # some block recalled non-contiguous frames


def test_mag_recall_loss_trains_the_generator(parts):
    gen, mem, _ = parts
    gen = copy.deepcopy(gen).train()
    tc = gen.cfg.transformer
    poses = torch.from_numpy(clip_poses()[:, :9].reshape(1, -1, 3)).repeat(2, 1, 1)  # (2, 27, 3)
    poses[1, :, 0] += 90.0  # another clip, other views
    x0 = torch.randn(2, 27, tc.latent_channels, tc.latent_size, tc.latent_size)
    text = torch.randn(2, 1, tc.text_dim)
    loss = generator_loss(gen, mem, x0, poses, text, text, "mag-recall", 6, torch.Generator().manual_seed(0), recall=2)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in gen.parameters())
    other = generator_loss(gen, mem, x0, poses, text, text, "mag", 6, torch.Generator().manual_seed(0))["loss"]
    assert abs(loss.item() - other.item()) > 1e-6  # it read another memory than mag's


def test_stage_config_takes_mag_recall_and_checks_recall_k():
    cfg = GeneratorStageConfig(policies={"mag": 0.5, "mag-recall": 0.5}, recall_k=[1, 4])
    assert cfg.recall_k == [1, 4]
    with pytest.raises(ValueError, match="recall_k"):
        GeneratorStageConfig(policies={"mag-recall": 1.0}, recall_k=[4, 1])
    with pytest.raises(ValueError, match="unknown memory policy 'recal'"):
        GeneratorStageConfig(policies={"recal": 1.0})
