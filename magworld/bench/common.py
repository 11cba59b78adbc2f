"""Shared benchmark helpers: timing, tables, JSON/PNG output, the overwrite check, the world model of a bench row."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> np.ndarray:
    """Seconds per call for ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out


def machine_info() -> dict[str, Any]:
    import os

    import torch

    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_1_5_15min": list(os.getloadavg())}  # other jobs on the machine skew timings


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table; floats get 4 significant digits."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, "machine": machine_info()}, indent=2, default=float))
    return path


def refuse_overwrite(paths: Iterable[str | Path], overwrite: bool, option: str = "bench.overwrite=true",
                     other: str = "bench.out_dir=<folder>") -> None:
    """The one check that no command silently replaces its own earlier output: a ``FileExistsError`` naming
    ``option`` (replace) and ``other`` (keep both) when one of ``paths`` exists and ``overwrite`` is off."""
    there = [str(p) for p in paths if Path(p).exists()]
    if there and not overwrite:
        raise FileExistsError(f"{' and '.join(there)} already there: pass {option} to replace it, or {other} to keep both")


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Write uint8 (H, W, 3) ``image`` upscaled ``scale`` times (nearest neighbour); folders are created."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST).save(path)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write and close a matplotlib figure (its memory is freed; pyplot keeps no reference)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return Path(path)


def load_world(checkpoint: str | None = None, **options):
    """A :class:`~magworld.model.pipeline.WorldModel`: the bundled set, or ``checkpoint``; ``options`` go to it."""
    from magworld.model.pipeline import WorldModel  # torch: imported only when a model row is built

    return WorldModel.from_bundled(**options) if checkpoint is None else WorldModel.from_checkpoint(checkpoint, **options)


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, resamples: int, stat=None) -> list[float]:
    """Seeded 95 % percentile bootstrap interval [low, high] over the first axis of ``values`` (n, ...): ``stat`` maps
    the resamples stacked (resamples, n, ...) to one number each (default: their means)."""
    picks = values[rng.integers(0, len(values), (resamples, len(values)))]  # (resamples, n, ...)
    stats = picks.mean(axis=1) if stat is None else stat(picks)
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]
