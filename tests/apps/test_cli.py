"""The ``magworld`` console script: every command resolves to a config and a function; every group answers --help."""

import importlib
import json
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_module

from magworld.apps.cli import COMMANDS, GROUPS, main, split_command
from magworld.model.checkpoint import load_checkpoint, save_checkpoint
from magworld.model.pipeline import GENERATOR_FILE, MANIFEST_FILE, sha256
from magworld.model.pretrained import bundled_path


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_a_config_and_an_entry_point(name):
    command = COMMANDS[name]
    module, _, function = command.target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        cfg = compose(command.config)
    if command.section != "<stage>":  # train: one node per stage, chosen by stage=...
        assert set(cfg) - {"hydra"} == {command.section}  # one override style: every option under the section


def test_help_lists_the_commands_the_groups_and_the_override_style(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS) and "<section>.<key>=value" in out
    assert set(GROUPS) == {"bench", "agent", "weights"}
    for group in GROUPS:
        for argv in ([group], [group, "--help"], [group, "-h"]):
            main(argv)
            out = capsys.readouterr().out
            assert f"usage: magworld {group} <command>" in out
            assert all(name in out for name in COMMANDS if name.startswith(group + " "))
            assert "play" not in out.split("options")[0]  # only the group's commands


def test_unknown_commands_say_so():
    assert split_command(["bench", "speed", "bench.steps=3"]) == ("bench speed", ["bench.steps=3"])
    with pytest.raises(SystemExit, match="unknown command 'fly'; known commands: play"):
        split_command(["fly"])
    with pytest.raises(SystemExit, match="(?s)unknown command 'bench fly'.*bench render"):
        main(["bench", "fly"])


def test_console_script_runs_from_any_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "magworld.apps.cli", "bench", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=True)
    assert "bench speed" in result.stdout and "agent train" not in result.stdout


def fake_generator(path, value):
    return save_checkpoint(path, {"w": torch.full((2, 3), float(value))}, "generator", {"width": 4}, extra={"note": "x"})


def test_weights_blend_command(tmp_path, capsys):
    base, tuned, out = fake_generator(tmp_path / "a.safetensors", 1.0), fake_generator(tmp_path / "b.safetensors", 3.0), tmp_path / "c.safetensors"
    main(["weights", "blend", f"weights.base={base}", f"weights.tuned={tuned}", f"weights.out={out}", "weights.weight=0.25"])
    state, meta = load_checkpoint(out, "generator")
    assert torch.allclose(state["w"], torch.full((2, 3), 1.5))  # 0.75 * 1 + 0.25 * 3
    assert meta["extra"]["blend"]["weight"] == 0.25 and str(out) in capsys.readouterr().out
    with pytest.raises(SystemExit):  # hydra reports the error and exits 1
        main(["weights", "blend", f"weights.base={base}", f"weights.tuned={tuned}"])
    assert "weights.out required" in capsys.readouterr().err


def test_weights_export_command_takes_the_ema_generator_out_of_a_dmd_checkpoint(tmp_path, capsys):
    state = {"ema.w": torch.full((2, 3), 2.0), "generator.w": torch.full((2, 3), 5.0), "discriminator.v": torch.ones(1)}
    ckpt = save_checkpoint(tmp_path / "last.safetensors", state, "dmd", {"generator": {"width": 4}, "critic": {}},
                           extra={"step": 40, "psnr_mag": 20.0})
    out = tmp_path / "now" / "generator"
    main(["weights", "export", f"weights.checkpoint={ckpt}", f"weights.out={out}"])
    exported, meta = load_checkpoint(out.with_suffix(".safetensors"), "generator")
    assert set(exported) == {"w"} and torch.equal(exported["w"], state["ema.w"])
    assert meta["config"] == {"width": 4} and meta["extra"]["step"] == 40 and "psnr_mag" not in meta["extra"]
    raw = tmp_path / "raw"
    main(["weights", "export", f"weights.checkpoint={ckpt}", f"weights.out={raw}", "weights.weights=generator"])
    assert torch.equal(load_checkpoint(raw.with_suffix(".safetensors"), "generator")[0]["w"], state["generator.w"])
    with pytest.raises(SystemExit):  # an earlier export is not replaced silently
        main(["weights", "export", f"weights.checkpoint={ckpt}", f"weights.out={raw}"])
    assert "weights.overwrite=true" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a generator export is not a dmd checkpoint
        main(["weights", "export", f"weights.checkpoint={out.with_suffix('.safetensors')}", f"weights.out={raw}",
              "weights.overwrite=true"])
    assert "not a 'dmd'" in capsys.readouterr().err


def test_weights_bundle_command(tmp_path, capsys):
    run, weights = tmp_path / "run", tmp_path / "weights"
    run.mkdir()
    weights.mkdir()
    for name, text in (("generator.safetensors", "g"), ("generator.json", "{}"), ("metrics.jsonl", ""), ("config.json", "{}")):
        (run / name).write_text(text)
    for kind in ("autoencoder", "memory"):  # the set the generator was trained against, already in the folder
        bundled_path(kind, weights).write_text(kind)
        bundled_path(kind, weights).with_suffix(".json").write_text("{}")
    main(["weights", "bundle", f"weights.run_dir={run}", f"weights.weights_dir={weights}"])
    manifest = json.loads((weights / MANIFEST_FILE).read_text())
    assert manifest["files"][GENERATOR_FILE]["sha256"] == sha256(run / "generator.safetensors")
    with pytest.raises(SystemExit):
        main(["weights", "bundle"])
    assert "weights.run_dir required" in capsys.readouterr().err
