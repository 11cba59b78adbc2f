"""The policy registry: benchmarks look up the :class:`~magworld.protocol.BlockWorld` they drive by name.

The built-in policies are one table, :data:`BUILTIN_POLICIES` (baselines, the world model's memory policies, the DMD
teacher; torch is imported only when a model row is built). Nothing registers itself on import; code outside the
package adds policies with ``register_policy("mine", lambda spec: MyWorld(**spec.options))`` or a lazy
``"module:function"`` string, and lists the module that does it in a bench config's ``plugins``."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from magworld.protocol import BlockWorld

from .baselines import GroundTruthOracle, NoMemory, ReprojectionMemory, ShiftBaseline
from .common import load_world

Factory = Callable[["PolicySpec"], BlockWorld]

_REGISTRY: dict[str, Union[Factory, str]] = {}  # policies registered from outside (plugins)


@dataclass
class PolicySpec:
    """One row of a benchmark: policy name, checkpoint, options and label (default: the name, plus ``@<checkpoint
    stem>``, so several checkpoints of one policy are distinct rows)."""

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


# --- the built-in policies -------------------------------------------------------------------------
def shift(spec: PolicySpec) -> ShiftBaseline:
    return ShiftBaseline()


def reproject_window(spec: PolicySpec) -> ReprojectionMemory:
    """Options ``window`` and ``sink`` (frames); the defaults (3 + 3) are the model's window cache
    (``GeneratorConfig.window``/``sink``: the first block and the last block)."""
    return ReprojectionMemory(window=int(spec.options.get("window", ReprojectionMemory.WINDOW)),
                              sink=int(spec.options.get("sink", ReprojectionMemory.SINK)), name="reproject_window")


def world_model(spec: PolicySpec) -> BlockWorld:
    """The bundled (or ``spec.checkpoint``) MAG world model with memory policy ``spec.name``; ``spec.options`` go to
    :class:`~magworld.model.pipeline.WorldModel` (``sampling_steps``, ``device``, ``seed``, ...)."""
    return load_world(spec.checkpoint, memory=spec.name, name=spec.label, **spec.options)


def teacher(spec: PolicySpec) -> BlockWorld:
    """The DMD teacher (``spec.checkpoint``: ``<run>/teacher.safetensors``) continuing its last blocks with its many
    steps, no memory beyond its clip; options ``steps``, ``autoencoder``, ``device``, ``seed``."""
    if not spec.checkpoint:
        raise ValueError("the teacher row needs a checkpoint: {name: teacher, checkpoint: runs/teacher/teacher.safetensors}")
    from magworld.model.teacher_world import TeacherWorld  # torch: imported only when the row is built

    return TeacherWorld.from_checkpoint(spec.checkpoint, name=spec.label, **spec.options)


BUILTIN_POLICIES: dict[str, Factory] = {
    "oracle": lambda spec: GroundTruthOracle(),
    "shift": shift,
    "no_memory": lambda spec: NoMemory(),
    "reproject_full": lambda spec: ReprojectionMemory(window=None, name="reproject_full"),
    "reproject_window": reproject_window,
    "mag": world_model,  # compressed cache, the whole history
    "window": world_model,  # first block (sink) + last block
    "full": world_model,  # every frame (uncompressed upper bound)
    "mag-ring": world_model,  # sink + the last 21 blocks, compressed (the paper's inference)
    "mag-recall": world_model,  # sink + last block + the K stored frames that saw the view (store bounded by views)
    "teacher": teacher,  # the DMD teacher, many steps over a sliding clip (no memory beyond it)
}


# --- lookup ------------------------------------------------------------------------------------------
def register_policy(name: str, factory: Union[Factory, str], overwrite: bool = False) -> None:
    """Make ``name`` available to the benchmarks. ``factory(spec) -> BlockWorld``, or ``"module:function"``."""
    taken = name in BUILTIN_POLICIES or (name in _REGISTRY and _REGISTRY[name] is not factory)
    if taken and not overwrite:
        raise ValueError(f"policy {name!r} is already registered (pass overwrite=True to replace it)")
    if isinstance(factory, str) and ":" not in factory:
        raise ValueError(f"a lazy factory is written 'module:function', got {factory!r}")
    _REGISTRY[name] = factory


def known_policies() -> list[str]:
    return sorted({**BUILTIN_POLICIES, **_REGISTRY})


def make_policy(spec: PolicySpec | str | dict[str, Any]) -> BlockWorld:
    """Build the policy a spec names; an unknown name is an error listing the known ones."""
    spec = PolicySpec.parse(spec)
    factory = _REGISTRY.get(spec.name, BUILTIN_POLICIES.get(spec.name))
    if factory is None:
        raise KeyError(f"unknown policy {spec.name!r}; known policies: {', '.join(known_policies())} "
                       "(register more with magworld.bench.register_policy, or list the module that does in bench.plugins)")
    if isinstance(factory, str):
        module, _, function = factory.partition(":")
        factory = getattr(importlib.import_module(module), function)
    return factory(spec)


def load_plugins(modules: list[str]) -> None:
    """Import modules that register policies (a benchmark config's ``plugins``)."""
    for module in modules:
        importlib.import_module(module)
