"""Build models from checkpoints (config from the JSON sidecar) and the weights bundled with the package.

``load_bundled("autoencoder")`` and ``load_bundled("memory")`` return the models trained by this
project (``magworld/assets/weights/``), in eval mode, with no download.
"""

from __future__ import annotations

from pathlib import Path

from .autoencoder import Autoencoder, AutoencoderConfig
from .checkpoint import CheckpointError, load_model
from .memory_model import MemoryConfig, MemoryModel

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "weights"
BUNDLED = {"autoencoder": "autoencoder.safetensors", "memory": "memory.safetensors"}


def load_autoencoder(path: str | Path) -> Autoencoder:
    return load_model(path, "autoencoder", Autoencoder, AutoencoderConfig, "pass an autoencoder checkpoint")


def load_memory(path: str | Path) -> MemoryModel:
    return load_model(path, "memory", MemoryModel, MemoryConfig, "pass a memory checkpoint")


def bundled_path(name: str, folder: str | Path = WEIGHTS_DIR) -> Path:
    """Where the bundled ``autoencoder`` or ``memory`` weights live (in ``folder``, default the package's)."""
    if name not in BUNDLED:
        raise ValueError(f"no bundled weights named {name!r}; choose one of {', '.join(BUNDLED)}")
    return Path(folder) / BUNDLED[name]


def load_bundled(name: str) -> Autoencoder | MemoryModel:
    """The bundled ``autoencoder`` or ``memory`` model, ready for inference."""
    path = bundled_path(name)
    if not path.exists():
        raise CheckpointError(f"bundled weights {path} are missing from this install; reinstall magworld or train "
                              f"them with `magworld train stage={name}` and copy the export there")
    return {"autoencoder": load_autoencoder, "memory": load_memory}[name](path)
