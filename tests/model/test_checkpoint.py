import json

import pytest
import torch

from magworld.model.checkpoint import CheckpointError, load_into, save_checkpoint
from magworld.model.config import transformer_preset
from magworld.model.transformer import BlockTransformer

from model_testing import micro_config


@pytest.fixture
def saved(tmp_path):
    cfg = micro_config()
    net = BlockTransformer(cfg)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.zeros(1, 3, 4, 4, 4), torch.rand(1, 3), torch.zeros(1, 3, 3), torch.zeros(1, 1, 16)).prediction.sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "net.safetensors", net, "transformer", cfg, extra={"step": 7}, optimizer=opt)
    return path, net, cfg, opt


def test_round_trip_with_optimizer(saved):
    path, net, cfg, opt = saved
    other = BlockTransformer(cfg)
    other_opt = torch.optim.AdamW(other.parameters())
    meta = load_into(other, path, "transformer", config=cfg, optimizer=other_opt)
    assert meta["extra"]["step"] == 7
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values()))
    state = other_opt.state_dict()["state"]
    assert torch.equal(state[0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not path.with_suffix(".tmp").exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_into(BlockTransformer(micro_config()), tmp_path / "nope.safetensors", "transformer")


def test_truncated_file(saved):
    path, net, cfg, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_into(BlockTransformer(cfg), path, "transformer")


def test_corrupt_header(saved):
    path, net, cfg, _ = saved
    path.write_bytes(b"\xff" * 64 + path.read_bytes()[64:])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_into(BlockTransformer(cfg), path, "transformer")


def test_corrupt_or_missing_sidecar(saved):
    path, net, cfg, _ = saved
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_into(BlockTransformer(cfg), path, "transformer")
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="no config sidecar"):
        load_into(BlockTransformer(cfg), path, "transformer")


def test_mismatched_config_shapes_and_kind(saved):
    path, net, cfg, _ = saved
    wider = micro_config(dim=64)
    with pytest.raises(CheckpointError, match="different transformer config"):
        load_into(BlockTransformer(wider), path, "transformer", config=wider)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_into(BlockTransformer(wider), path, "transformer")
    with pytest.raises(CheckpointError, match="not a 'autoencoder'"):
        load_into(BlockTransformer(cfg), path, "autoencoder")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config"]["dim"] == cfg.dim and meta["kind"] == "transformer"


def test_other_preset_is_rejected(tmp_path):
    tiny = transformer_preset("tiny")
    path = save_checkpoint(tmp_path / "tiny.safetensors", BlockTransformer(tiny), "transformer", tiny)
    small = transformer_preset("tiny", depth=2)
    with pytest.raises(CheckpointError, match="saved with a different transformer config.*depth"):
        load_into(BlockTransformer(small), path, "transformer", config=small)
