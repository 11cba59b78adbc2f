"""configs/train/*.yaml stay in sync with the stage dataclasses: every field is spelled out, and they build."""

from dataclasses import fields

import pytest
from hydra import compose, initialize_config_module

from magworld.config import build
from magworld.train import STAGES
from magworld.train.autoencoder import AutoencoderStageConfig
from magworld.train.loop import RunConfig
from magworld.train.data import WorldDataConfig
from magworld.train.dmd import DMDStageConfig
from magworld.train.generator import GeneratorStageConfig
from magworld.train.memory import MemoryStageConfig
from magworld.train.teacher import TeacherStageConfig

CONFIGS = {"autoencoder": AutoencoderStageConfig, "memory": MemoryStageConfig, "generator": GeneratorStageConfig,
           "teacher": TeacherStageConfig, "dmd": DMDStageConfig}


@pytest.fixture(scope="module")
def train_config():
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        return compose(config_name="train")


def _names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_yaml_spells_out_every_field(train_config, stage):
    node = train_config[stage]
    assert set(node) - {"_target_"} == _names(CONFIGS[stage])
    assert set(node.run) - {"_target_"} == _names(RunConfig)  # e.g. run.device and run.precision
    assert set(node.data) - {"_target_"} == _names(WorldDataConfig)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_yaml_builds_with_device_and_precision(train_config, stage):
    cfg = build(train_config[stage])
    assert isinstance(cfg, CONFIGS[stage])
    assert (cfg.run.device, cfg.run.precision) == ("auto", "fp32")
