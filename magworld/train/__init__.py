"""Training stages, one module each; ``magworld train stage=<name>`` runs :func:`main`."""

from __future__ import annotations

import importlib
from typing import Any

from magworld.config import build

STAGES: tuple[str, ...] = ("autoencoder", "memory", "generator", "teacher", "dmd")  # module magworld.train.<stage> has train(cfg)


def main(cfg: Any) -> Any:
    """Build the config node named by ``cfg.stage`` and run that stage's ``train``."""
    if cfg.stage not in STAGES:
        raise SystemExit(f"magworld train: unknown stage {cfg.stage!r}; choose one of {', '.join(STAGES)}")
    module = importlib.import_module(f"magworld.train.{cfg.stage}")
    return module.train(build(cfg[cfg.stage]))
