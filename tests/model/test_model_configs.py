"""The hydra configs of this component compose and build into typed dataclasses."""

import pytest
from hydra import compose, initialize_config_module

from magworld.bench.compression import CompressionBenchConfig, blocks_for, ratio_config
from magworld.config import build
from magworld.model.config import PRESETS, TransformerConfig
from magworld.train.autoencoder import AutoencoderStageConfig
from magworld.train.memory import MemoryStageConfig


def _compose(name: str, overrides: list[str]):
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_train_config_builds_every_stage_and_preset(preset):
    cfg = _compose("train", [f"model@memory.model.transformer={preset}"])
    assert cfg.stage == "autoencoder"
    assert isinstance(build(cfg.autoencoder), AutoencoderStageConfig)
    memory = build(cfg.memory)
    assert isinstance(memory, MemoryStageConfig) and isinstance(memory.model.transformer, TransformerConfig)
    assert memory.model.transformer == PRESETS[preset]


def test_compression_bench_config_defines_ratios():
    bench = build(_compose("bench_compression", ["bench.quick=true"]).bench)
    assert isinstance(bench, CompressionBenchConfig) and bench.ratios == [1, 2, 3, 4, 5]
    for ratio in bench.ratios:
        stage = ratio_config(bench, ratio)
        assert stage.model.transformer.block_frames == ratio and stage.model.kept == 1
        assert stage.model.compression == ratio and stage.run.steps == bench.quick_steps
        assert stage.blocks == blocks_for(ratio, bench.frames_per_clip) >= 2


def test_default_stages_pair_with_the_bundled_weights():
    """`magworld train stage=...` with no overrides must build models that read the bundled autoencoder and memory
    model (a mismatch once broke the default generator run after the bundled latents changed)."""
    from magworld.model import load_bundled

    cfg = _compose("train", [])
    ae, memory = load_bundled("autoencoder"), load_bundled("memory")
    assert build(cfg.autoencoder).model == ae.cfg
    for stage in ("memory", "generator", "teacher", "dmd"):
        assert build(cfg[stage]).model.transformer == memory.cfg.transformer, stage
