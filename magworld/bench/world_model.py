"""The MAG world model as a benchmark row (``mag``, ``window``, ``full``, ``mag-ring``, ``mag-recall``).

It lives here rather than in :mod:`magworld.model.pipeline` because rows are named by the benchmark's policy specs.
"""

from __future__ import annotations

from magworld.model.pipeline import WorldModel


def world_model_policy(memory: str, checkpoint: str | None = None, label: str | None = None, **options) -> WorldModel:
    """A :class:`WorldModel` with memory policy ``memory``: the bundled generator, or ``checkpoint``;
    ``options`` go to :class:`WorldModel` (e.g. ``sampling_steps``, ``device``, ``seed``); ``label`` names the row."""
    if checkpoint:
        return WorldModel.from_checkpoint(checkpoint, memory=memory, name=label, **options)
    return WorldModel.from_bundled(memory=memory, name=label, **options)
