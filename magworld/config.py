"""Typed configs from hydra nodes: every node names its dataclass with ``_target_``."""

from __future__ import annotations

from typing import Any


def build(node: Any) -> Any:
    """Instantiate a config node into its dataclass, with plain Python lists/dicts inside (no DictConfig)."""
    from hydra.utils import instantiate

    return instantiate(node, _convert_="all")
