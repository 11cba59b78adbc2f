"""The typed configs are the one source of truth; every command's YAML body is generated from them.

A schema YAML (``configs/<command>.yaml``, ``configs/train/<stage>.yaml``) is a hand-written preamble (help comment,
hydra defaults list) and a body written here from the dataclass its ``_target_`` names: every field, its default and
its source comment; fields a defaults-list preset fills are left to the preset. ``python scripts/config_yamls.py``
rewrites the bodies, ``--check`` lists the stale ones (exit 1, the tests run it). Presets stay hand-written. A
maintainer's script of the checkout: it rewrites the checkout's configs/, not an installed copy."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # the checkout's
SCHEMA_FILES = ("*.yaml", "train/*.yaml")  # relative to CONFIG_DIR; presets live in sub-folders of their own
PRESET_TARGET = re.compile(r"^\s*-\s*/?[\w/.-]+@([\w.]+)\s*:")  # '- /model@model.transformer: wide16' -> model.transformer
GROUP_DEFAULT = re.compile(r"^\s*-\s*([\w/]+)\s*:\s*([\w.-]+)\s*$")  # '- agent: random' (package from its header)
PACKAGE = re.compile(r"^#\s*@package\s+([\w.]+)")
INDENT = "  "


def target_class(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@cache
def field_comments(cls: type) -> dict[str, list[str]]:
    """Field name -> its comment lines, from the source of ``cls`` or of the base class that declares it."""
    comments: dict[str, list[str]] = {}
    for base in reversed([c for c in cls.__mro__ if dataclasses.is_dataclass(c)]):
        comments.update(own_field_comments(base))
    return comments


def own_field_comments(cls: type) -> dict[str, list[str]]:
    """``{field: lines}`` from ``cls``'s own source: comment lines above a field become lines before it (marked ``^``),
    its trailing comment and the ``#   ...`` lines under it follow its value."""
    comments: dict[str, list[str]] = {}
    current, leading = None, []
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"^    (\w+): [^#]*?(?:#\s?(.*))?$", line)
        if field and not line.lstrip().startswith(("def ", "@")):
            current = field.group(1)
            comments[current] = [f"^{text}" for text in leading] + ([field.group(2).strip()] if field.group(2) else [])
            leading = []
            continue
        more = re.match(r"^    #\s{2,}(.*)$", line)
        above = re.match(r"^    # (\S.*)$", line)
        if more and current is not None:
            comments[current].append(more.group(1).strip())
        elif above:
            current, leading = None, [*leading, above.group(1).strip()]
        else:
            current, leading = None, []
    return comments


def scalar(value: Any) -> str:
    """One YAML value in flow style (lists and dicts on one line, keys in their order)."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def raw_default(f: dataclasses.Field) -> Any:
    """A field's default as the dataclass declares it (before any ``__post_init__`` normalises or checks it)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise ValueError(f"field {f.name!r} has no default: every command option needs one (None for 'required')")


def declared(cls: type) -> Any:
    """An instance of dataclass ``cls`` holding its declared defaults, without running its ``__post_init__`` (commands
    whose options are required check them there)."""
    obj = object.__new__(cls)
    for f in dataclasses.fields(cls):
        object.__setattr__(obj, f.name, raw_default(f))
    return obj


def body(obj: Any, depth: int, skip: frozenset[str], where: str = "") -> list[str]:
    """The YAML lines of dataclass instance ``obj`` at ``depth``: ``_target_`` then every field, nested dataclasses as
    nodes; ``skip`` holds dotted paths (from the file's node) a preset fills."""
    pad = INDENT * depth
    lines = [f"{pad}_target_: {qualified_name(type(obj))}"]
    comments = field_comments(type(obj))
    for f in dataclasses.fields(obj):
        path = f"{where}.{f.name}" if where else f.name
        if path in skip or not f.init:
            continue
        value, notes = getattr(obj, f.name), comments.get(f.name, [])
        lines += [f"{pad}# {n[1:]}" for n in notes if n.startswith("^")]
        notes = [n for n in notes if not n.startswith("^")]
        head = f"{pad}{f.name}:" if dataclasses.is_dataclass(value) else f"{pad}{f.name}: {scalar(value)}"
        lines.append(head + (f"  # {notes[0]}" if notes else ""))
        lines += [f"{pad}#   {n}" for n in notes[1:]]
        if dataclasses.is_dataclass(value):
            lines += body(value, depth + 1, skip, path)
    return lines


def preset_paths(preamble: list[str], node: str | None) -> frozenset[str]:
    """Dotted paths below ``node`` (None: the file's root) that the defaults list fills with a preset."""
    paths = set()
    for line in preamble:
        match, group = PRESET_TARGET.match(line), GROUP_DEFAULT.match(line)
        path = match.group(1) if match else None
        if group and group.group(2) != "null" and (CONFIG_DIR / group.group(1) / f"{group.group(2)}.yaml").exists():
            header = (CONFIG_DIR / group.group(1) / f"{group.group(2)}.yaml").read_text().splitlines()[:1]
            package = PACKAGE.match(header[0]) if header else None
            path = package.group(1) if package else None
        if path:
            if node is None:
                paths.add(path)
            elif path.startswith(node + "."):
                paths.add(path[len(node) + 1:])
    return frozenset(paths)


def generated(path: Path) -> str | None:
    """What ``path`` should hold (preamble, then nodes from dataclass defaults); None if no node names a dataclass."""
    text = path.read_text()
    tree = yaml.safe_load(text) or {}
    lines = text.splitlines()
    if isinstance(tree.get("_target_"), str):  # a package-level node (configs/train/<stage>.yaml)
        cls = target_class(tree["_target_"])
        if not dataclasses.is_dataclass(cls):
            return None
        start = next(i for i, line in enumerate(lines) if line.startswith("_target_:"))
        preamble = lines[:start]
        return "\n".join(preamble + body(declared(cls), 0, preset_paths(preamble, None))) + "\n"
    nodes = [k for k, v in tree.items() if isinstance(v, dict) and isinstance(v.get("_target_"), str)
             and dataclasses.is_dataclass(target_class(v["_target_"]))]
    if not nodes:
        return None
    start = min(i for i, line in enumerate(lines) for k in nodes if line.startswith(f"{k}:"))
    preamble, out = lines[:start], []
    rest = [k for k in tree if k not in nodes and k not in ("defaults", "hydra")]
    if rest:
        raise ValueError(f"{path}: top-level keys {rest} beside the generated node(s) {nodes}; move them into a node")
    for key in nodes:
        out += [f"{key}:"] + body(declared(target_class(tree[key]["_target_"])), 1, preset_paths(preamble, key))
    return "\n".join(preamble + out) + "\n"


def schema_files() -> list[Path]:
    return sorted(p for pattern in SCHEMA_FILES for p in CONFIG_DIR.glob(pattern))


def stale() -> list[Path]:
    """The YAMLs whose body differs from what their dataclass would write."""
    return [p for p in schema_files() if (want := generated(p)) is not None and p.read_text() != want]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--check"]:
        paths = stale()
        for p in paths:
            print(f"{p.relative_to(CONFIG_DIR.parent)} differs from its dataclass defaults: "
                  f"run python scripts/config_yamls.py")
        return 1 if paths else 0
    if argv:
        raise SystemExit("usage: python scripts/config_yamls.py [--check]")
    for p in schema_files():
        want = generated(p)
        if want is not None and p.read_text() != want:
            p.write_text(want)
            print(f"wrote {p.relative_to(CONFIG_DIR.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
