"""Imports run one way: world <- model <- train/bench <- envs <- agents <- apps.

Every Python file of the four installed folders is parsed (nothing is imported) and each import is
collected: ``import``/``from`` statements anywhere (function-level ones included), relative ones
resolved, ``importlib.import_module``/``__import__`` calls, and strings that name a module the way an
importlib table does (``"magworld.envs.viewer"``, ``"magworld.apps.cli:main"``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# installed package -> folder in the repo (pyproject's package-dir mapping)
FOLDERS = {"magworld": ROOT / "magworld", "magworld.envs": ROOT / "envs", "magworld.agents": ROOT / "agents",
           "magworld.apps": ROOT / "apps"}
UPPER_FLOORS = ("magworld.envs", "magworld.agents", "magworld.apps", "envs", "agents", "apps")
# (files whose module name starts with ..., module prefixes they must not import)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("magworld", ("gymnasium", "pygame", "stable_baselines3", *UPPER_FLOORS)),  # the library (magworld/ only, see below)
    ("magworld.world", ("magworld.model", "magworld.train", "magworld.bench")),
    ("magworld.model", ("magworld.world", "magworld.train", "magworld.bench")),
    ("magworld.envs", ("magworld.agents", "magworld.apps", "agents", "apps")),
    ("magworld.agents", ("magworld.apps", "apps")),
]
MODULE_STRING = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?$")  # "a.b.c" or "a.b:function"
IMPORT_FUNCTIONS = {"import_module", "__import__", "find_spec"}


def module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, whether it is a package's ``__init__``) of a file in one of :data:`FOLDERS`."""
    for package, folder in sorted(FOLDERS.items(), key=lambda item: -len(item[0])):
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            return ".".join([package, *(parts[:-1] if is_init else parts)]), is_init
    raise ValueError(f"{path} is outside {list(FOLDERS.values())}")


def _resolve(node: ast.ImportFrom, module: str, is_init: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_init else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in(source: str, module: str, is_init: bool = False) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, the module ``module``'s text (sorted, no repeats)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_init)
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in IMPORT_FUNCTIONS and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            found.append((node.lineno, node.value.split(":")[0]))
    return sorted(set(found))


def violations(path: Path, source: str | None = None) -> list[str]:
    module, is_init = module_name(path)
    library = path.is_relative_to(FOLDERS["magworld"])
    source = path.read_text() if source is None else source
    rules = [(prefix, forbidden) for prefix, forbidden in RULES
             if (module == prefix or module.startswith(prefix + ".")) and (library or prefix != "magworld")]
    out: dict[int, str] = {}  # one message per line
    for line, imported in imports_in(source, module, is_init):
        for prefix, forbidden in rules:
            if line not in out and any(imported == f or imported.startswith(f + ".") for f in forbidden):
                out[line] = f"{path.relative_to(ROOT)}:{line}: {module} imports {imported} (not allowed in {prefix})"
    return list(out.values())


def python_files() -> list[Path]:
    return sorted(p for folder in FOLDERS.values() for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_folder_is_scanned():
    names = {module_name(p)[0] for p in python_files()}
    assert {"magworld.model.pipeline", "magworld.envs.magworld_env", "magworld.agents.baselines", "magworld.apps.cli"} <= names


def test_imports_run_one_way():
    found = [v for path in python_files() for v in violations(path)]
    assert not found, "imports against the layer direction:\n" + "\n".join(found)


@pytest.mark.parametrize("folder, text", [
    ("magworld/bench", "def media():\n    import gymnasium\n"),
    ("magworld/bench", "from magworld import envs\n"),
    ("magworld", "TABLE = {'play': 'magworld.envs.viewer:main'}\n"),
    ("magworld/train", "import importlib\nimportlib.import_module('magworld.agents.ppo')\n"),
    ("magworld/model", "from ..world import make_scene\n"),
    ("magworld/model", "def f():\n    from magworld.train import common\n"),
    ("envs", "def run():\n    from magworld.agents import make_baseline\n"),
    ("envs", "import agents\n"),
    ("agents", "from ..apps import cli\n"),
])
def test_a_planted_violation_is_found(folder, text):
    assert violations(ROOT / folder / "planted.py", text), f"missed: {text!r} in {folder}"


@pytest.mark.parametrize("folder, text", [
    ("magworld/bench", "from ..model import pipeline\nfrom . import common\n"),
    ("envs", "from .viewer import Viewer\nimport magworld.world\n"),
    ("apps", "from magworld.agents import BASELINES\nfrom magworld.envs.recording import EpisodeRecorder\n"),
    ("magworld", "'''Docs may name magworld.envs in prose.'''\nMESSAGE = 'see magworld.envs for the env'\n"),
])
def test_allowed_imports_pass(folder, text):
    assert violations(ROOT / folder / "planted.py", text) == []


def stage_imports(path: Path, source: str | None = None) -> list[str]:
    """The other training stages a stage module imports (they share ``train.common`` and ``train.loop`` instead)."""
    from magworld.train import STAGES

    module, is_init = module_name(path)
    others = {f"magworld.train.{s}" for s in STAGES} - {module}
    source = path.read_text() if source is None else source
    return [name for _, name in imports_in(source, module, is_init) if name.split(":")[0] in others
            or any(name.startswith(o + ".") for o in others)]


def test_no_training_stage_imports_another():
    from magworld.train import STAGES

    found = {s: stage_imports(ROOT / "magworld" / "train" / f"{s}.py") for s in STAGES}
    assert {s: names for s, names in found.items() if names} == {}
    planted = "from .generator import generator_loss\n"  # the check can fail
    assert "magworld.train.generator" in stage_imports(ROOT / "magworld" / "train" / "dmd.py", planted)
