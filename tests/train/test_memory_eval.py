"""The memory stage's split of reconstruction quality by a frame's place in its block."""

import pytest
import torch

from magworld.model.config import TransformerConfig
from magworld.model.memory_model import MemoryConfig
from magworld.train.memory import by_place_in_block


def test_places_split_kept_still_and_moved_frames():
    cfg = MemoryConfig(transformer=TransformerConfig(block_frames=3), kept=1)
    psnr = torch.tensor([[10.0, 20.0, 30.0, 41.0, 50.0, 60.0]])  # (B=1, T=6)
    poses = torch.tensor([[[5.0, 0, 60], [7.0, 0, 60], [5.0, 0, 60],  # frame 0 at the kept frame's pose, 1 moved
                           [0.0, 0, 50], [0.0, 0, 60], [0.0, 0, 60]]])  # frame 3 zoomed (moved), 4 still
    out = by_place_in_block(psnr, poses, cfg)
    assert out == pytest.approx({"psnr_kept": 45.0, "psnr_others": 30.25, "psnr_others_still": 30.0,
                                 "psnr_others_moved": 30.5})
    out = by_place_in_block(psnr, poses[:, [0, 0, 0, 3, 3, 3]], cfg)  # nobody moves: no moved key
    assert "psnr_others_moved" not in out and out["psnr_others_still"] == pytest.approx(30.25)


def test_training_eval_scores_revisits_on_the_rewards_memory_only_region():
    """Training's rollout evaluation uses the env reward's definition: for a frame returning to a given frame's pose,
    the pixels no directly seen block (the sink, the last block) showed; other frames are all False."""
    import numpy as np

    from magworld.revisit import directly_seen_blocks, memory_only_mask
    from magworld.train.common import memory_only_of_context

    yaw = [0, 0, 0, 60, 60, 60, 80, 100, 120, 140, 160, 180, 120, 90, 60]  # given blocks 0 (0°) and 1 (60°), out, back
    poses = np.array([[[y, 0.0, 60.0] for y in yaw]], dtype=np.float32)  # (1, 15, 3)
    found = memory_only_of_context(poses, 6, 16)
    assert found[:, :14].sum() == 0  # none of these frames is at a given frame's pose
    assert found[0, 14].any()  # back at 60°: seen in block 1 only, neither by the sink (0°) nor the last block
    seen = np.concatenate([poses[0, 3 * b:3 * b + 3] for b in directly_seen_blocks(14 // 3)])
    assert np.array_equal(found[0, 14], memory_only_mask(poses[0, 14], seen, 16, 16))
