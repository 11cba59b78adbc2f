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
