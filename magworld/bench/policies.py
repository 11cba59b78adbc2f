"""The policy registry: benchmarks look up the world they drive by name.

A *policy* is anything speaking :class:`magworld.protocol.BlockWorld`. A factory turns a
:class:`PolicySpec` (name, optional checkpoint, free options) into one. Registration is one line::

    from magworld.bench import register_policy
    register_policy("mag", lambda spec: WorldModel.from_checkpoint(spec.checkpoint, cache="mag"))
    register_policy("window", "magworld.model.pipeline:bench_window")  # "module:function", imported lazily

The benchmark's own baselines (``oracle``, ``shift``, ``no_memory``, ``reproject_full``,
``reproject_window``) are registered by :mod:`magworld.bench.baselines`. Modules named in a
benchmark config's ``plugins`` list are imported before the lookup, so code outside the package
can register policies too.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from magworld.protocol import BlockWorld

Factory = Callable[["PolicySpec"], BlockWorld]

_REGISTRY: dict[str, Union[Factory, str]] = {}


@dataclass
class PolicySpec:
    """One row of a benchmark: which policy, which checkpoint, how it is labelled in tables.

    ``label`` defaults to the name, plus the checkpoint's file stem when there is one, so several
    checkpoints of one policy (compression ratio 1–5, history term λ = 0 vs trained λ) get distinct rows.
    """

    name: str
    checkpoint: str | None = None
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label is None:
            self.label = self.name if self.checkpoint is None else f"{self.name}@{Path(self.checkpoint).stem}"

    @classmethod
    def parse(cls, item: "PolicySpec | str | dict[str, Any]") -> "PolicySpec":
        """``"shift"`` or ``{"name": "mag", "checkpoint": ...}`` (as written in a config) -> PolicySpec."""
        if isinstance(item, PolicySpec):
            return item
        if isinstance(item, str):
            return cls(name=item)
        if isinstance(item, dict):
            unknown = set(item) - {"name", "checkpoint", "label", "options", "_target_"}
            if "name" not in item or unknown:
                raise ValueError(f"a policy entry needs 'name' and may have checkpoint/label/options; got {item}")
            return cls(**{k: v for k, v in item.items() if k != "_target_"})
        raise ValueError(f"a policy entry is a name or a mapping with 'name', got {item!r}")


def register_policy(name: str, factory: Union[Factory, str], overwrite: bool = False) -> None:
    """Make ``name`` available to the benchmarks. ``factory(spec) -> BlockWorld``, or ``"module:function"``."""
    if not overwrite and name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"policy {name!r} is already registered (pass overwrite=True to replace it)")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"a lazy factory is written 'module:function', got {factory!r}")
    _REGISTRY[name] = factory


def known_policies() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def make_policy(spec: PolicySpec | str | dict[str, Any]) -> BlockWorld:
    """Build the policy a spec names; an unknown name is an error listing the known ones."""
    spec = PolicySpec.parse(spec)
    _load_builtins()
    if spec.name not in _REGISTRY:
        raise KeyError(f"unknown policy {spec.name!r}; known policies: {', '.join(sorted(_REGISTRY))} "
                       "(register more with magworld.bench.register_policy, or list the module that does in bench.plugins)")
    factory = _REGISTRY[spec.name]
    if isinstance(factory, str):
        module, _, function = factory.partition(":")
        factory = getattr(importlib.import_module(module), function)
    return factory(spec)


def load_plugins(modules: list[str]) -> None:
    """Import modules that register policies (a benchmark config's ``plugins``)."""
    for module in modules:
        importlib.import_module(module)


def _load_builtins() -> None:
    from . import baselines  # noqa: F401  (registers the baselines on import)
    from . import model_policies  # noqa: F401  (the world model's mag / window / full, lazily built)
