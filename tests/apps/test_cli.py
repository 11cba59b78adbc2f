"""The ``magworld`` console script: every command resolves to a config and a function."""

import importlib
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module

from magworld.apps.cli import COMMANDS, main, split_command


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_a_config_and_an_entry_point(name):
    config_name, target, _ = COMMANDS[name]
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        assert compose(config_name) is not None


def test_help_lists_the_commands_and_unknown_commands_say_so(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert split_command(["bench", "speed", "bench.steps=3"]) == ("bench speed", ["bench.steps=3"])
    with pytest.raises(SystemExit, match="unknown command 'fly'"):
        split_command(["fly"])


def test_console_script_runs_from_any_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "magworld.apps.cli", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=True)
    assert "rollout" in result.stdout and "bench speed" in result.stdout
