"""Helpers shared by the training-stage tests: read a run's JSON-lines log, and spy on a stage's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch


def metrics_lines(out: str | Path) -> list[dict]:
    """Every record of ``<out>/metrics.jsonl``, in order."""
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def losses(out: str | Path) -> list[float]:
    """The training losses logged in ``<out>/metrics.jsonl``."""
    return [x["loss"] for x in metrics_lines(out) if "loss" in x]


def autocast_dtype(model, batch) -> torch.dtype | None:
    """The CPU autocast dtype a step runs under (None: no autocast)."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None


def spy_steps(monkeypatch, module, record: Callable[[Any, Any], Any] = autocast_dtype) -> list:
    """Record ``record(model, batch)`` before every step of the stage ``module.build_stage`` builds."""
    seen, build = [], module.build_stage

    def spied_build(cfg, placement):
        stage = build(cfg, placement)
        step = stage.step

        def spied(model, batch):
            seen.append(record(model, batch))
            return step(model, batch)

        stage.step = spied
        return stage

    monkeypatch.setattr(module, "build_stage", spied_build)
    return seen
