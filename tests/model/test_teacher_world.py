"""TeacherWorld: the DMD teacher continuing its last blocks (the bench's "teacher, many steps" row)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_testing import perturbed

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.config import transformer_preset
from magworld.model.flow import FlowConfig
from magworld.model.teacher import Teacher, TeacherConfig
from magworld.model.teacher_world import TeacherWorld
from magworld.model.text import TextConfig, make_text_encoder

MICRO = transformer_preset("tiny", dim=32, depth=1, heads=2, latent_size=4)


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    ae = perturbed(Autoencoder(AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4)), 1)
    teacher = perturbed(Teacher(TeacherConfig(transformer=MICRO, clip_blocks=3,
                                              flow=FlowConfig(shift=2.0, steps=3, mode="euler"))), 2)
    return TeacherWorld(teacher, ae, make_text_encoder(TextConfig(encoder="hashing", cache_dir="")), device="cpu")


def blocks(seed: int, n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 3, 32, 32, 3), dtype=np.uint8)
    poses = np.tile(np.array([10.0 * seed, 0.0, 60.0], dtype=np.float32), (n, 3, 1))
    return frames, poses


def play(world: TeacherWorld, given: list[int], seeds=None) -> np.ndarray:
    world.start(*blocks(given[0], 2), ["a room", "a street"], seeds=seeds)
    for s in given[1:]:
        world.memorize(*blocks(s, 2))
    return world.step(blocks(99, 2)[1], ["a room, pan right", "a street, pan right"])


def test_step_shape_and_same_seed_same_frames(world):
    a, b = play(world, [1, 2]), play(world, [1, 2])
    assert a.shape == (2, 3, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, play(world, [1, 2], seeds=[5, 6]))


def test_it_continues_exactly_its_last_clip_blocks_minus_one(world):
    """clip_blocks = 3: a step reads the last two blocks; a block older than that changes nothing, a block inside
    the window changes the output."""
    base = play(world, [1, 2, 3])
    assert np.array_equal(base, play(world, [7, 2, 3]))  # block 1 fell out of the window
    assert not np.array_equal(base, play(world, [1, 7, 3]))
    assert world.cache_bytes() == 2 * 2 * 3 * 16 * 4 * 4 * 4  # 2 blocks x N=2 worlds x 3 frames, float32 latents


def test_before_the_window_fills_the_first_block_stands_in(world):
    """One block given: the clip is that block twice, then the new one (a camera at rest before the step)."""
    alone = play(world, [1])
    assert np.array_equal(alone, play(world, [1, 1]))


def test_step_before_start_and_wrong_prompts_are_errors():
    ae = Autoencoder(AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4))
    w = TeacherWorld(Teacher(TeacherConfig(transformer=MICRO)), ae,
                     make_text_encoder(TextConfig(encoder="hashing", cache_dir="")), device="cpu")
    with pytest.raises(RuntimeError, match="start"):
        w.step(blocks(1)[1], ["x"])
    w.start(*blocks(1), ["x"])
    with pytest.raises(ValueError, match="prompts"):
        w.step(blocks(2)[1], ["x", "y"])
