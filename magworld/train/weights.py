"""Weight tooling: bundle a trained set into a weights folder (the package's by default) and blend two generator exports.

``magworld weights bundle`` / ``magworld weights blend`` run these; the bundled folder holds the autoencoder, the memory
model and the generator a world loads with :meth:`~magworld.model.pipeline.WorldModel.from_bundled`, with a sha256
manifest the tests check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from magworld.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from magworld.model.pipeline import GENERATOR_FILE, MANIFEST_FILE, sha256
from magworld.model.pretrained import WEIGHTS_DIR, bundled_path

EVAL_PREFIXES = ("psnr_", "ssim_", "detail")  # keys of a run's held-out evaluation in its export's extras


def copy_weights(source: str | Path, target: str | Path, half: bool = False) -> None:
    """Copy a .safetensors file; ``half``: store its float32 tensors as float16 (half the bytes; loading casts them
    back into the float32 model)."""
    if not half:
        shutil.copyfile(source, target)
        return
    tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in load_file(str(source)).items()}
    save_file(tensors, str(target))


def blend(base: str | Path, tuned: str | Path, out: str | Path, weight: float) -> Path:
    """Weight-space blend of two generator exports, ``tuned`` fine-tuned from ``base`` (WiSE-FT, Wortsman et al.
    2022): every tensor ``(1 - weight) * base + weight * tuned``, written to ``out`` (.safetensors + sidecar: ``tuned``'s
    config and extras, plus the blend's recipe). ``weight`` 0 is ``base``, 1 is ``tuned``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight is a fraction in [0, 1], got {weight}")
    a, _ = load_checkpoint(base, "generator")
    b, meta = load_checkpoint(tuned, "generator")
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise CheckpointError(f"{base} and {tuned} are not the same network; blend two exports of one generator shape")
    mixed = {k: ((1 - weight) * a[k].float() + weight * b[k].float()).to(b[k].dtype) for k in b}
    recipe, evals = split_evals(meta.get("extra", {}))
    extra = {**recipe, "blend": {"base": str(base), "tuned": str(tuned), "weight": weight, "tuned_eval": evals}}
    return save_checkpoint(out, mixed, "generator", meta["config"], extra=extra)


def export_generator(checkpoint: str | Path, out: str | Path, weights: str = "ema") -> Path:
    """The generator inside a two-network training checkpoint (``stage=dmd``'s ``last.safetensors`` or a kept step:
    ``weights`` "ema" or "generator") as a generator export ``out`` (.safetensors + sidecar), which
    :class:`~magworld.model.pipeline.WorldModel`, the benches and ``bundle`` read; mid-run checkpoints can be benched."""
    if weights not in ("ema", "generator"):
        raise ValueError(f"weights is 'ema' or 'generator', got {weights!r}")
    tensors, meta = load_checkpoint(checkpoint, "dmd")
    state = {k[len(weights) + 1:]: v for k, v in tensors.items() if k.startswith(f"{weights}.")}
    if not state or "generator" not in meta.get("config", {}):
        raise CheckpointError(f"{checkpoint} holds no {weights!r} generator; pass a stage=dmd checkpoint")
    recipe, evals = split_evals(meta.get("extra", {}))
    extra = {**recipe, "weights": weights, "source": str(checkpoint), "source_eval": evals}
    return save_checkpoint(out, state, "generator", meta["config"]["generator"], extra=extra)


def split_evals(extra: dict) -> tuple[dict, dict]:
    """(a run export's extras without its evaluation figures, those figures): a blend is not the run that was evaluated,
    so its sidecar keeps the tuned run's figures apart (``blend.tuned_eval``), never as its own."""
    evals = {k: v for k, v in extra.items() if k.startswith(EVAL_PREFIXES)}
    return {k: v for k, v in extra.items() if k not in evals}, evals


def bundle(run_dir: str | Path, export: str = "generator", weights_dir: str | Path = WEIGHTS_DIR,
           autoencoder: str | Path | None = None, memory: str | Path | None = None, half: bool = False,
           steps: int | None = None) -> dict:
    """Copy a run's export and training log (and optionally the ``autoencoder``/``memory`` runs') into a weights folder
    (default the package's) and write its manifest (sha256, sizes); ``half``: memory model and generator in float16;
    ``steps``: the bundled world's default denoising steps (None keeps the run's)."""
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive number of denoising steps, got {steps}")
    run_dir, weights_dir = Path(run_dir), Path(weights_dir)
    for kind, source in (("autoencoder", autoencoder), ("memory", memory)):  # check before copying anything
        if source is None and not bundled_path(kind, weights_dir).exists():
            raise FileNotFoundError(f"{bundled_path(kind, weights_dir)} is missing: pass the {kind} run the generator "
                                    f"was trained against (weights.{kind}=<run folder>)")
    weights_dir.mkdir(parents=True, exist_ok=True)
    for kind, source in (("autoencoder", autoencoder), ("memory", memory)):
        if source is not None:
            source, target = Path(source), bundled_path(kind, weights_dir)
            copy_weights(source / f"{kind}.safetensors", target, half and kind == "memory")
            for suffix, src in ((".json", f"{kind}.json"), (".metrics.jsonl", "metrics.jsonl"),
                                (".train-config.json", "config.json")):
                shutil.copyfile(source / src, target.with_suffix(suffix))
    copy_weights(run_dir / f"{export}.safetensors", weights_dir / GENERATOR_FILE, half)
    for src, dst in ((f"{export}.json", "generator.json"), ("metrics.jsonl", "generator.log.jsonl"),
                     ("config.json", "generator.train.json")):
        shutil.copyfile(run_dir / src, weights_dir / dst)
    if steps is not None or half:  # the copied sidecar, edited
        meta = json.loads((weights_dir / "generator.json").read_text())
        if steps is not None:
            meta["config"]["flow"]["steps"] = int(steps)
        if half and memory is not None and "memory_sha256" in meta["extra"]:  # it now reads the rounded memory model
            meta["extra"]["memory_sha256_float32"] = meta["extra"]["memory_sha256"]
            meta["extra"]["memory_sha256"] = sha256(bundled_path("memory", weights_dir))
        (weights_dir / "generator.json").write_text(json.dumps(meta, indent=2))
    names = [GENERATOR_FILE, "generator.json", "memory.safetensors", "memory.json", "autoencoder.safetensors",
             "autoencoder.json"]
    manifest = {"about": "sha256 of the bundled files WorldModel.from_bundled loads; the generator was trained "
                         "against exactly this memory model and autoencoder",
                "files": {n: {"sha256": sha256(weights_dir / n), "bytes": (weights_dir / n).stat().st_size}
                          for n in names}}
    (weights_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
