"""``magworld weights bundle`` / ``blend`` / ``export``: :mod:`magworld.train.weights` as commands (options
``weights.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magworld.bench.common import refuse_overwrite
from magworld.model.pretrained import WEIGHTS_DIR
from magworld.train.weights import blend, bundle, export_generator


def _require(cfg, keys: tuple[str, ...], example: str) -> None:
    missing = [f"weights.{key}" for key in keys if not getattr(cfg, key)]
    if missing:
        raise ValueError(f"{', '.join(missing)} required: magworld weights {example}")


def _refuse(out: str, overwrite: bool) -> None:
    tensors = Path(out).with_suffix(".safetensors")
    refuse_overwrite([tensors], overwrite, "weights.overwrite=true", "weights.out=<path>")


@dataclass
class BundleConfig:
    """Arguments of :func:`magworld.train.weights.bundle`; ``weights_dir`` None: the package's weights folder."""

    run_dir: str = ""  # the generator run folder (its <export>.safetensors + .json, metrics.jsonl, config.json)
    export: str = "generator"
    weights_dir: str | None = None
    autoencoder: str | None = None  # run folders bundled with it (None: weights_dir must hold them already)
    memory: str | None = None
    half: bool = False  # memory model and generator stored as float16
    steps: int | None = None  # denoising steps the bundled world samples with (None: the run's)

    def __post_init__(self) -> None:
        _require(self, ("run_dir",), "bundle weights.run_dir=runs/generator (the generator run folder to bundle)")


@dataclass
class BlendConfig:
    """Arguments of :func:`magworld.train.weights.blend`: ``(1 - weight) * base + weight * tuned`` -> ``out``."""

    base: str = ""
    tuned: str = ""
    out: str = ""
    weight: float = 0.5
    overwrite: bool = False  # replace an existing out

    def __post_init__(self) -> None:
        _require(self, ("base", "tuned", "out"), "blend weights.base=A.safetensors weights.tuned=B.safetensors "
                 "weights.out=C.safetensors [weights.weight=0.5]")


@dataclass
class ExportConfig:
    """Arguments of :func:`magworld.train.weights.export_generator`: a ``stage=dmd`` checkpoint's generator -> ``out``."""

    checkpoint: str = ""  # e.g. runs/adv-2/last.safetensors (or a kept step_NNNNN.safetensors)
    out: str = ""  # the generator export to write (.safetensors + .json)
    weights: str = "ema"  # ema (what the stage exports at its end) | generator (the raw weights)
    overwrite: bool = False  # replace an existing out

    def __post_init__(self) -> None:
        _require(self, ("checkpoint", "out"), "export weights.checkpoint=runs/dmd/last.safetensors "
                 "weights.out=runs/dmd-now/generator")


def bundle_main(config: BundleConfig) -> dict:
    weights_dir = Path(config.weights_dir) if config.weights_dir is not None else WEIGHTS_DIR
    manifest = bundle(config.run_dir, config.export, weights_dir, autoencoder=config.autoencoder, memory=config.memory,
                      half=config.half, steps=config.steps)
    print(f"bundled {config.run_dir} into {weights_dir} ({len(manifest['files'])} files in the manifest)")
    return manifest


def blend_main(config: BlendConfig) -> Path:
    _refuse(config.out, config.overwrite)
    out = blend(config.base, config.tuned, config.out, config.weight)
    print(f"blended {config.base} and {config.tuned} (weight {config.weight}) into {out}")
    return out


def export_main(config: ExportConfig) -> Path:
    _refuse(config.out, config.overwrite)
    out = export_generator(config.checkpoint, config.out, config.weights)
    print(f"exported the {config.weights} generator of {config.checkpoint} to {out}")
    return out
