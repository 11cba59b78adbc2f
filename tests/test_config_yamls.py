"""Every command's yaml spells out every field of the typed configs it builds: hydra refuses to override a key the
yaml lacks (``bench.compare`` and ``generator.paste`` would have failed that way), so a missing field is a setting
users cannot reach from the command line."""

import dataclasses
import importlib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict

import magworld.configs

COMMANDS = sorted(p.stem for p in Path(magworld.configs.__path__[0]).glob("*.yaml") if p.stem != "quiet")


def _target(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name, None)


def missing_fields(node, where: str = "") -> list[str]:
    """'<path>.<field>' for each dataclass field a ``_target_`` node of ``node`` (recursively) does not spell out."""
    out = []
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        cls = _target(target) if isinstance(target, str) else None
        if cls is not None and dataclasses.is_dataclass(cls):
            out += [f"{where}.{f.name}" for f in dataclasses.fields(cls) if f.name not in node]
        for key in node:
            out += missing_fields(node[key], f"{where}.{key}" if where else str(key))
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_yaml_spells_out_every_dataclass_field(command):
    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose(command)
    assert missing_fields(cfg) == []


def test_the_walk_finds_a_missing_field():
    """The check can fail: a yaml node without one of its dataclass's fields is reported."""
    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose("bench_world")
    with open_dict(cfg):
        del cfg.bench["carry"]
    assert missing_fields(cfg) == ["bench.carry"]


def test_yaml_bodies_are_generated_from_the_dataclasses():
    """The dataclasses are the one source of truth: every command YAML's body is what ``python scripts/config_yamls.py``
    writes from them (run it after changing a dataclass)."""
    from config_yamls import stale

    assert stale() == []


def test_a_hand_edited_yaml_is_found(tmp_path, monkeypatch):
    """The generation check can fail: a value changed by hand (or a field the dataclass lost) differs."""
    import config_yamls as configs

    source = configs.CONFIG_DIR / "bench_world.yaml"
    edited = tmp_path / "bench_world.yaml"
    edited.write_text(source.read_text().replace("drift_steps: 100", "drift_steps: 99"))
    assert configs.generated(edited) == source.read_text() != edited.read_text()


@pytest.mark.parametrize("command", COMMANDS)
def test_composed_config_builds_to_the_dataclass_defaults(command):
    """Composing a command's YAML (presets included) and building it gives exactly the dataclass defaults: the bundled
    model's shapes and recipes live in the dataclasses and nowhere else. Commands with required options (weights) have
    no defaults to compare."""
    from magworld.config import build

    with initialize_config_module(config_module="magworld.configs", version_base="1.3"):
        cfg = compose(command)
    for key in cfg:
        node = cfg[key]
        cls = _target(node.get("_target_")) if isinstance(node, DictConfig) and "_target_" in node else None
        if cls is None or not dataclasses.is_dataclass(cls):
            continue
        try:
            default = cls()
        except ValueError:  # required options
            continue
        assert build(node) == default, f"{command}: {key} differs from {cls.__name__}()"
