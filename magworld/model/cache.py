"""The typed key/value cache of the block transformer, with its policies ``full``, ``window``, ``mag``, ``mag-ring``
and ``mag-recall`` (docs/notes/code.md); the network never mutates it, the writer appends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable

import torch

from .recall import ViewStore, store_bound

POLICIES = ("full", "window", "mag", "mag-ring", "mag-recall")
COMPRESSED = ("mag", "mag-ring", "mag-recall")  # policies that store only each block's kept frames


@dataclass
class CacheConfig:
    policy: str = "mag"
    window: int = 6  # window policy: recent frames kept
    sink: int = 3  # window policy: first frames kept forever
    kept: int = 1  # compressed policies: last frames of each block kept
    ring: int = 21  # mag-ring: blocks whose compressed frames are kept (the paper's 21), besides the sink
    recall: int = 8  # mag-recall: stored frames recalled per block besides the sink and the last block (K)
    rays: int = 16  # mag-recall: view overlap measured on rays x rays rays of the target view
    fov_cell: float = 20.0  # mag-recall: field-of-view cell of a view key, degrees (with 15° yaw x 10° pitch cells)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown cache policy {self.policy!r}; choose one of {', '.join(POLICIES)}")
        if self.window < 0 or self.sink < 0 or self.kept < 1 or self.ring < 1 or self.recall < 0 or self.rays < 1 \
                or self.fov_cell <= 0:
            raise ValueError(f"cache sizes must be window >= 0, sink >= 0, kept >= 1, ring >= 1, recall >= 0, rays >= 1, "
                             f"fov_cell > 0; got {self}")


@dataclass
class CacheSnapshot:
    """A detached copy of a cache's contents (for branching and replay)."""

    keys: list[torch.Tensor | None]
    values: list[torch.Tensor | None]
    frame_index: list[int]
    next_frame: int
    stores: list[dict[str, Any]] | None = None  # mag-recall, per world: frames (S,), poses (S, 3), keys/values
    # (S, depth, heads, N, hd) of its store slots (see ViewStore.state)
    block_frames: int = 0  # frames per appended block


class KVCache:
    """Per-layer cached keys/values for ``depth`` layers; empty until the first :meth:`append`."""

    def __init__(self, config: CacheConfig, depth: int) -> None:
        self.config, self.depth = config, depth
        self.reset()

    def reset(self) -> None:
        self.keys: list[torch.Tensor | None] = [None] * self.depth  # per layer (B, heads, F, N, hd)
        self.values: list[torch.Tensor | None] = [None] * self.depth
        self.frame_index: list[int] = []  # absolute frame index of each cached frame (not mag-recall)
        self.next_frame = 0  # absolute index the next block starts at
        self.stores: list[ViewStore] | None = None  # mag-recall: one store per world (None before the first block)
        # mag-recall: per world one buffer (capacity, depth, heads, N, hd) whose row s is store slot s (see _reserve)
        self.store_keys: list[torch.Tensor] = []
        self.store_values: list[torch.Tensor] = []
        self._block_frames = 0  # frames per appended block (the last append's)
        self._view: tuple[Hashable, Any] | None = None  # what view() built last, and for which key

    @property
    def recalls(self) -> bool:
        return self.config.policy == "mag-recall"

    def view(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """A value derived from the contents (the transformer's corrected keys for the block at ``key``), built
        once and reused until the contents change (append, evict, reset, restore) or another key is asked for."""
        if self._view is None or self._view[0] != key:
            self._view = (key, build())
        return self._view[1]

    def frames(self) -> int:
        """Frames the next block attends to (the most of any world): every cached frame, or for ``mag-recall`` the
        sink, the last block and up to ``recall`` others of the store."""
        return max(self.attended_counts(), default=0) if self.recalls else len(self.frame_index)

    def bytes(self) -> int:
        """Memory of the keys and values the next block attends to, all worlds together (see :meth:`frames`)."""
        if self.recalls:
            return sum(self.attended_counts()) * self._slot_bytes()
        return self.stored_bytes()

    def stored_frames(self) -> int:
        """Frames held (the most of any world); the attended ones for every policy but ``mag-recall``."""
        return max((len(s.frames) for s in self.stores or []), default=0) if self.recalls else len(self.frame_index)

    def stored_bytes(self) -> int:
        """Memory held by all stored keys and values, all worlds together."""
        if self.recalls:
            return sum(len(s.frames) for s in self.stores or []) * self._slot_bytes()
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)

    def _slot_bytes(self) -> int:
        if not self.store_keys:
            return 0
        return 2 * self.store_keys[0][0].numel() * self.store_keys[0].element_size()

    def slot_tensors(self, world: int) -> tuple[torch.Tensor, torch.Tensor]:
        """mag-recall: world ``world``'s stored keys and values (S, depth, heads, N, hd), slot order (views, not copies)."""
        size = len(self.stores[world].frames) if self.stores else 0
        return self.store_keys[world][:size], self.store_values[world][:size]

    def _reserve(self, world: int, slots: int, like: torch.Tensor) -> None:
        """mag-recall: make world ``world``'s buffers hold at least ``slots`` slots of ``like``'s shape[1:] (depth, heads,
        N, hd), dtype and device. One buffer per world, sized up front to :func:`~magworld.model.recall.store_bound` slots for MAGWorld's
        camera (doubled if a camera outside that range needs more): slots are written in place, never allocated one by
        one, so replacing a slot allocates nothing and the store cannot fragment the heap. ``torch.empty`` leaves the
        pages of unwritten slots untouched, so resident memory grows by what is stored, not by the capacity."""
        shape = like.shape[1:]
        while len(self.store_keys) <= world:
            self.store_keys.append(like.new_empty((0, *shape)))
            self.store_values.append(like.new_empty((0, *shape)))
        have = self.store_keys[world]
        if slots <= len(have) and have.shape[1:] == shape and have.dtype == like.dtype:
            return
        capacity = max(slots, store_bound(self.config.fov_cell, self.config.sink), 2 * len(have))
        for buffers in (self.store_keys, self.store_values):
            grown = like.new_empty((capacity, *shape))
            old = buffers[world]
            if len(old) and old.shape[1:] == shape:
                grown[:len(old)].copy_(old)
            buffers[world] = grown

    def attended_counts(self) -> list[int]:
        """mag-recall: per world, how many stored frames the next block reads (fixed once the store holds enough)."""
        counts = []
        for store in self.stores or []:
            frames = store.frames  # (S,)
            always = int(((frames < store.sink) | (frames >= self.next_frame - self._block_frames)).sum())
            counts.append(always + min(self.config.recall, len(frames) - always))
        return counts

    def append(self, keys: list[torch.Tensor], values: list[torch.Tensor], frame_index: list[int],
               poses: torch.Tensor | None = None) -> None:
        """Store one block: per layer keys/values (B, heads, T, N, hd) of frames ``frame_index`` (T,) at camera poses
        (B, T, 3) (needed by ``mag-recall``, whose store is indexed by view)."""
        if len(keys) != self.depth or len(values) != self.depth:
            raise ValueError(f"cache holds {self.depth} layers, got keys/values for {len(keys)}/{len(values)}")
        last = self.next_frame - 1 if self.recalls and self.stores else (self.frame_index[-1] if self.frame_index else None)
        if last is not None and min(frame_index) <= last:
            raise ValueError(f"frames {frame_index} do not follow the cached frame {last}; append "
                             f"blocks in order (a new block starts at next_frame)")
        count = len(frame_index)  # the compressed policies store each block's last `kept` frames, the others all
        chosen = list(range(max(0, count - self.config.kept) if self.config.policy in COMPRESSED else 0, count))
        if self.recalls:
            self._store(keys, values, frame_index, chosen, poses)
            return
        for i, (k, v) in enumerate(zip(keys, values)):
            k, v = k[:, :, chosen], v[:, :, chosen]  # (B, H, T_kept, N, hd)
            self.keys[i] = k.clone() if self.keys[i] is None else torch.cat([self.keys[i], k], dim=2)
            self.values[i] = v.clone() if self.values[i] is None else torch.cat([self.values[i], v], dim=2)
        self.frame_index += [frame_index[j] for j in chosen]
        self.next_frame = max(self.next_frame, max(frame_index) + 1)
        self._block_frames = len(frame_index)
        self._view = None
        self.evict()

    def _store(self, keys: list[torch.Tensor], values: list[torch.Tensor], frame_index: list[int], chosen: list[int],
               poses: torch.Tensor | None) -> None:
        """mag-recall: each world's store places the block's kept frames (new slot or the slot of the same view)."""
        batch = keys[0].shape[0]
        if poses is None or tuple(poses.shape[:2]) != (batch, len(frame_index)):
            raise ValueError(f"a mag-recall cache stores frames by view: append needs poses (B={batch}, "
                             f"T={len(frame_index)}, 3), got {None if poses is None else tuple(poses.shape)}")
        if self.stores is None:
            self.stores = [ViewStore(self.config.sink, self.config.fov_cell) for _ in range(batch)]
            self.store_keys, self.store_values = [], []
        self._block_frames = len(frame_index)
        cpu = poses.detach().float().cpu().numpy()
        like = keys[0].new_empty((0, self.depth, keys[0].shape[1], *keys[0].shape[3:]))  # (0, depth, H, N, hd): no bytes
        for w, store in enumerate(self.stores):
            for j in chosen:
                slot = store.place(frame_index[j], cpu[w, j])
                self._reserve(w, slot + 1, like)
                for i in range(self.depth):  # written in place: (H, N, hd) per layer
                    self.store_keys[w][slot, i].copy_(keys[i][w, :, j])
                    self.store_values[w][slot, i].copy_(values[i][w, :, j])
        self.next_frame = max(self.next_frame, max(frame_index) + 1)
        self._view = None

    def recalled(self, reference: int, poses: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                                                       torch.Tensor, torch.Tensor]:
        """mag-recall: what a block starting at frame ``reference`` with poses (B, T, 3) reads, per world
        (:meth:`ViewStore.attended`): per layer keys and values (B, heads, A, N, hd), their frame indices (B, A) and
        which are real (B, A) bool (worlds with fewer frames are padded with zeros, False)."""
        cpu = poses.detach().float().cpu().numpy()
        cfg = self.config
        chosen = [store.attended(reference, cpu[w], cfg.recall, poses.shape[1], cfg.rays) for w, store in enumerate(self.stores)]
        width = max(len(c) for c in chosen)
        pad = self.store_keys[0].new_zeros((1, *self.store_keys[0].shape[1:]))  # (1, depth, H, N, hd)
        k_rows, v_rows = [], []
        for w, slots in enumerate(chosen):
            index = torch.tensor(slots, dtype=torch.long, device=pad.device)
            for rows, buffer in ((k_rows, self.store_keys[w]), (v_rows, self.store_values[w])):
                picked = torch.cat([buffer.index_select(0, index), pad.expand(width - len(slots), *pad.shape[1:])])
                rows.append(picked.permute(1, 2, 0, 3, 4))  # (A, depth, H, N, hd) -> (depth, H, A, N, hd)
        k_all, v_all = torch.stack(k_rows), torch.stack(v_rows)  # (B, depth, H, A, N, hd)
        frames = torch.tensor([[self.stores[w].frames[s] for s in c] + [reference] * (width - len(c))
                               for w, c in enumerate(chosen)], device=pad.device)  # (B, A)
        valid = torch.tensor([[True] * len(c) + [False] * (width - len(c)) for c in chosen], device=pad.device)
        return list(k_all.unbind(1)), list(v_all.unbind(1)), frames, valid

    def evict(self) -> None:
        """Apply the policy's size limit: ``window`` keeps the sink + the most recent frames, ``mag-ring`` the sink's and
        the last ``ring`` blocks' compressed frames."""
        if self.config.policy == "mag-ring":
            self._keep([j for j, f in enumerate(self.frame_index) if f < self.config.sink or
                        f >= self.next_frame - self.config.ring * self._block_frames])
            return
        if self.config.policy != "window" or self.frames() <= self.config.sink + self.config.window:
            return
        n = self.frames()
        self._keep(list(range(min(self.config.sink, n))) + list(range(max(self.config.sink, n - self.config.window), n)))

    def _keep(self, keep: list[int]) -> None:
        if len(keep) == len(self.frame_index):
            return
        index = torch.tensor(keep, device=self.keys[0].device)
        self.keys = [k.index_select(2, index) for k in self.keys]
        self.values = [v.index_select(2, index) for v in self.values]
        self.frame_index = [self.frame_index[j] for j in keep]
        self._view = None

    def snapshot(self) -> CacheSnapshot:
        clone = lambda ts: [None if t is None else t.clone() for t in ts]  # noqa: E731
        stores = None
        if self.stores is not None:
            stores = [{**store.state(), **dict(zip(("keys", "values"), (t.clone() for t in self.slot_tensors(w))))}
                      for w, store in enumerate(self.stores)]  # keys/values (S, depth, H, N, hd)
        return CacheSnapshot(clone(self.keys), clone(self.values), list(self.frame_index), self.next_frame, stores,
                             self._block_frames)

    def restore(self, snap: CacheSnapshot) -> None:
        if len(snap.keys) != self.depth:
            raise ValueError(f"snapshot has {len(snap.keys)} layers, this cache {self.depth}")
        self.keys = [None if t is None else t.clone() for t in snap.keys]
        self.values = [None if t is None else t.clone() for t in snap.values]
        self.frame_index, self.next_frame = list(snap.frame_index), snap.next_frame
        self.stores, self.store_keys, self.store_values = None, [], []
        if snap.stores is not None:
            if not self.recalls:
                raise ValueError(f"snapshot holds a mag-recall store; this cache's policy is {self.config.policy!r}")
            self.stores = [ViewStore.from_state(self.config.sink, self.config.fov_cell, s["frames"], s["poses"])
                           for s in snap.stores]
            for w, s in enumerate(snap.stores):
                self._reserve(w, len(s["keys"]), s["keys"])
                self.store_keys[w][:len(s["keys"])].copy_(s["keys"])
                self.store_values[w][:len(s["values"])].copy_(s["values"])
        self._block_frames = snap.block_frames
        self._view = None
