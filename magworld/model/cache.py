"""The typed key/value cache of the block transformer, with its eviction policies.

One :class:`KVCache` serves a whole layer stack and a batch of ``B`` independent worlds. Keys are
stored as the network returns them (rotated in space and at the oldest time position, see
:mod:`magworld.model.rope`), per layer as ``(B, heads, F, N, hd)`` (F cached frames of N tokens), with the
absolute index of each frame (ascending: blocks are appended in order). Policies (``CacheConfig.policy``):

- ``full``   — every frame of every block (the uncompressed upper bound);
- ``window`` — the first ``sink`` frames ever appended plus the last ``window`` frames;
- ``mag``    — per block only its last ``kept`` frames (the memory model's compressed frame): with
  3-frame blocks and ``kept=1`` it holds 1/3 of ``full``, with the whole history.

The network never mutates the cache: it reads :meth:`KVCache.layer` and returns the block's keys
and values; the caller (:func:`~magworld.model.generator.write_block`) hands them to :meth:`KVCache.append`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

POLICIES = ("full", "window", "mag")


@dataclass
class CacheConfig:
    policy: str = "mag"
    window: int = 6  # window policy: recent frames kept
    sink: int = 3  # window policy: first frames kept forever
    kept: int = 1  # mag policy: last frames of each block kept

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown cache policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.window < 0 or self.sink < 0 or self.kept < 1:
            raise ValueError(f"cache sizes must be window >= 0, sink >= 0, kept >= 1; got {self}")


@dataclass
class CacheSnapshot:
    """A detached copy of a cache's contents (for branching and replay)."""

    keys: list[torch.Tensor | None]
    values: list[torch.Tensor | None]
    frame_index: list[int]
    next_frame: int


@dataclass
class KVCache:
    """Per-layer cached keys/values for ``depth`` layers; empty until the first :meth:`append`."""

    config: CacheConfig
    depth: int
    keys: list[torch.Tensor | None] = field(init=False)
    values: list[torch.Tensor | None] = field(init=False)
    frame_index: list[int] = field(init=False)  # absolute frame index of each cached frame
    next_frame: int = field(init=False)  # absolute index the next block starts at
    _view: tuple[Hashable, Any] | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.keys, self.values = [None] * self.depth, [None] * self.depth
        self.frame_index, self.next_frame = [], 0
        self._view = None

    def view(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A value derived from the contents (the transformer's corrected keys for the block at ``key``), built
        once and reused until the contents change (append, evict, reset, restore) or another key is asked for."""
        if self._view is None or self._view[0] != key:
            self._view = (key, build())
        return self._view[1]

    def frames(self) -> int:
        """Number of frames currently cached."""
        return len(self.frame_index)

    def bytes(self) -> int:
        """Memory held by all cached keys and values."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Layer ``i``'s cache flattened for attention, keys and values (B, heads, F*N, hd), or None if empty."""
        if self.keys[i] is None:
            return None
        return self.keys[i].flatten(2, 3), self.values[i].flatten(2, 3)  # (B, H, F*N, hd)

    def select(self, block_frames: int) -> list[int]:
        """Which frames (positions within a block of ``block_frames``) the policy stores."""
        if self.config.policy == "mag":
            return list(range(max(0, block_frames - self.config.kept), block_frames))
        return list(range(block_frames))

    def append(self, keys: list[torch.Tensor], values: list[torch.Tensor], frame_index: list[int]) -> None:
        """Store one block: per layer keys/values (B, heads, T, N, hd) of frames ``frame_index`` (T,)."""
        if len(keys) != self.depth or len(values) != self.depth:
            raise ValueError(f"cache holds {self.depth} layers, got keys/values for {len(keys)}/{len(values)}")
        if self.frame_index and min(frame_index) <= self.frame_index[-1]:
            raise ValueError(f"frames {frame_index} do not follow the cached frame {self.frame_index[-1]}; append "
                             f"blocks in order (a new block starts at next_frame)")
        chosen = self.select(len(frame_index))
        for i, (k, v) in enumerate(zip(keys, values)):
            k, v = k[:, :, chosen], v[:, :, chosen]  # (B, H, T_kept, N, hd)
            self.keys[i] = k.clone() if self.keys[i] is None else torch.cat([self.keys[i], k], dim=2)
            self.values[i] = v.clone() if self.values[i] is None else torch.cat([self.values[i], v], dim=2)
        self.frame_index += [frame_index[j] for j in chosen]
        self.next_frame = max(self.next_frame, max(frame_index) + 1)
        self._view = None
        self.evict()

    def evict(self) -> None:
        """Apply the policy's size limit (only ``window`` drops frames): keep sinks + the most recent frames."""
        if self.config.policy != "window" or self.frames() <= self.config.sink + self.config.window:
            return
        n = self.frames()
        keep = list(range(min(self.config.sink, n))) + list(range(max(self.config.sink, n - self.config.window), n))
        index = torch.tensor(keep, device=self.keys[0].device)
        self.keys = [k.index_select(2, index) for k in self.keys]
        self.values = [v.index_select(2, index) for v in self.values]
        self.frame_index = [self.frame_index[j] for j in keep]
        self._view = None

    def snapshot(self) -> CacheSnapshot:
        clone = lambda ts: [None if t is None else t.clone() for t in ts]  # noqa: E731
        return CacheSnapshot(clone(self.keys), clone(self.values), list(self.frame_index), self.next_frame)

    def restore(self, snap: CacheSnapshot) -> None:
        if len(snap.keys) != self.depth:
            raise ValueError(f"snapshot has {len(snap.keys)} layers, this cache {self.depth}")
        self.keys = [None if t is None else t.clone() for t in snap.keys]
        self.values = [None if t is None else t.clone() for t in snap.values]
        self.frame_index, self.next_frame = list(snap.frame_index), snap.next_frame
        self._view = None
