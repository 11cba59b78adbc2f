"""Revisits: when an observation shows a view an earlier one showed, and which of its pixels only memory can supply.

The one definition of the revisit score (env reward, loop task, revisit bench, training's evaluation); the matcher,
the memory-only region, the score and the bounded reference store are explained in docs/notes/code.md.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from magworld.metrics import masked_psnr, masked_ssim, similarity_score
from magworld.protocol import PITCH_CELL, YAW_CELL, view_cells
from magworld.world.actions import ACTION_TABLE, apply_action
from magworld.world.camera import DEFAULT_FOV, PITCH_LIMIT, Pose, pose_distances, visible_mask
from magworld.world.trajectory import block_poses as frame_poses

YAW_CELLS = int(360 / YAW_CELL)
PITCH_CELLS = int(2 * PITCH_LIMIT / PITCH_CELL) + 1
RECENT_BLOCKS = 1  # blocks before the drawn one whose frames the generator sees directly (the last block)
SINK_BLOCKS = 1  # first blocks every memory policy keeps and attends to (the sink)
MIN_MEMORY_FRACTION = 0.15  # of the frame: smaller memory-only regions are not scored (615 px at 64 x 64)
MAX_MEMORY_FRACTION = 0.5  # the most one action can leave memory-only: a 15° pan at fov 30° (0.504 at 64 x 64)
ZLIB_LEVEL = 6
# The score's zero: what a world *without* memory reaches on memory-only pixels. Measured for the bundled generator's
# `window` world (sink + last block, no long memory) on loop revisits of validation seeds 7100-7111 (90 and 120 degree
# loops, 144 scored revisits): mean memory-only PSNR 27.0 dB, SSIM 0.781 (docs/notes/reward.md). Below these a revisit
# scores 0; at PSNR_HIGH and SSIM 1 (the first visit exactly) it scores 1.
PSNR_FLOOR = 27.0  # dB
PSNR_HIGH = 40.0  # dB
SSIM_FLOOR = 0.78


def pose_vector(pose: Pose | Sequence[float] | np.ndarray) -> np.ndarray:
    """``float64 (3,)`` yaw, pitch, fov of a :class:`Pose` or of 3 numbers."""
    vec = pose.as_array() if isinstance(pose, Pose) else np.asarray(pose, dtype=np.float64)
    if vec.shape != (3,):
        raise ValueError(f"a pose is 3 numbers (yaw, pitch, fov degrees), got shape {vec.shape}")
    return vec


def revisit_reference(seen: np.ndarray, pose: np.ndarray, tolerance: float, eligible: int | None = None,
                      away: float | None = None) -> int | None:
    """Index into ``seen`` (K, 3) of the earliest frame < ``eligible`` within ``tolerance`` of ``pose`` (3,), or None;
    with ``away``, some later frame must be farther than ``tolerance`` and at least ``away`` degrees from ``pose``."""
    seen = np.asarray(seen, dtype=np.float64).reshape(-1, 3)  # (K, 3)
    if not len(seen):
        return None
    dist = pose_distances(seen, np.asarray(pose, dtype=np.float64))  # (K,)
    limit = len(seen) if eligible is None else eligible
    matches = np.flatnonzero(dist[:limit] <= tolerance)
    if matches.size == 0:
        return None
    if away is not None:
        since = dist[matches[-1] + 1 :]
        if not np.any((since > tolerance) & (since >= away)):
            return None
    return int(matches[0])


# --- the memory-only region -----------------------------------------------------------------------
def directly_seen_blocks(block: int, recent_blocks: int = RECENT_BLOCKS, sink_blocks: int = SINK_BLOCKS) -> list[int]:
    """Indices of the blocks whose frames the generator sees directly when it draws block ``block``: the first
    ``sink_blocks`` (the sink) and the ``recent_blocks`` before ``block`` (the last block, which carries the
    reprojected last shown frame). Every memory policy attends to these; only older frames need memory."""
    if recent_blocks < 1 or sink_blocks < 0:
        raise ValueError(f"recent_blocks must be >= 1 and sink_blocks >= 0, got {recent_blocks}, {sink_blocks}")
    return sorted(set(range(min(sink_blocks, block))) | set(range(max(0, block - recent_blocks), block)))


def memory_only_mask(pose: Pose | Sequence[float] | np.ndarray, seen: Sequence[Pose] | np.ndarray, height: int,
                     width: int) -> np.ndarray:
    """Boolean (H, W): the pixels of the view at ``pose`` that none of the ``seen`` frame poses (``(K, 3)`` or
    :class:`Pose` objects; the frames of :func:`directly_seen_blocks`) showed."""
    return ~visible_mask(pose_vector(pose), seen, height, width)


def check_memory_fraction(fraction: float) -> float:
    """``fraction`` if a memory-only region that large can occur, else a ``ValueError`` saying why not."""
    if not 0.0 < fraction <= MAX_MEMORY_FRACTION:
        raise ValueError(f"min_memory_fraction={fraction} can never be met: one action leaves at most "
                         f"{MAX_MEMORY_FRACTION} of a view memory-only (a 15° pan at fov 30°); choose 0 < fraction <= "
                         f"{MAX_MEMORY_FRACTION} (default {MIN_MEMORY_FRACTION})")
    return float(fraction)


def min_memory_pixels(height: int, width: int, fraction: float = MIN_MEMORY_FRACTION) -> int:
    """The smallest memory-only region scored: ``ceil(fraction x H x W)`` pixels (615 at 64 x 64, default fraction)."""
    return int(math.ceil(check_memory_fraction(fraction) * height * width - 1e-9))


class ScoreRange(Protocol):
    """The PSNR range and SSIM floor of :func:`magworld.metrics.similarity_score` (the env's ``RewardConfig`` is one;
    defaults :data:`PSNR_FLOOR`, :data:`PSNR_HIGH`, :data:`SSIM_FLOOR`)."""

    psnr_low: float
    psnr_high: float
    ssim_low: float


@dataclass(frozen=True)
class RevisitScore:
    """One observation's revisit: its reference (frame index and step, None if it revisits nothing), the size of its
    memory-only region, the scored threshold, PSNR/SSIM there (None unless scored) and the score (0 unless scored)."""

    reference: int | None
    reference_step: int | None
    pixels: int
    min_pixels: int
    psnr: float | None = None
    ssim: float | None = None
    score: float = 0.0

    @property
    def is_revisit(self) -> bool:
        return self.reference is not None and self.pixels >= self.min_pixels

    def as_info(self) -> dict[str, float | int | bool]:
        """The env's ``info["revisit"]`` (plus ``is_revisit``): ``reference_step`` only when the view has a reference,
        ``psnr``/``ssim`` only when scored (absent, not None, so that vector envs batch them with a presence mask)."""
        optional = {"reference_step": self.reference_step, "psnr": self.psnr, "ssim": self.ssim}
        return {"is_revisit": self.is_revisit, "memory_pixels": self.pixels, "min_pixels": self.min_pixels,
                "score": self.score, **{k: v for k, v in optional.items() if v is not None}}


def score_revisit(frame: np.ndarray, reference: np.ndarray | None, mask: np.ndarray, min_pixels: int,
                  score: ScoreRange, reference_index: int | None = None, reference_step: int | None = None) -> RevisitScore:
    """The revisit score of ``frame`` against ``reference`` on the memory-only ``mask``: scored when the mask holds at
    least ``min_pixels`` pixels; ``reference`` may be None below that (not needed), and
    ``reference_index``/``reference_step`` (the reference frame's, None if the view is not a revisit) are reported."""
    pixels = int(np.count_nonzero(mask))
    if reference is None and reference_index is not None and pixels >= min_pixels:
        raise ValueError("a revisit whose memory-only region is large enough is scored: pass its reference frame")
    if reference is None or pixels < min_pixels:
        return RevisitScore(reference_index, reference_step, pixels, min_pixels)
    p, q = masked_psnr(frame, reference, mask), masked_ssim(frame, reference, mask)
    return RevisitScore(reference_index, reference_step, pixels, min_pixels, p, q,
                        similarity_score(p, q, score.psnr_low, score.psnr_high, score.ssim_low))


def view_cell(pose: Pose | Sequence[float] | np.ndarray) -> tuple[int, int]:
    """(yaw cell, pitch cell) of a view direction: 15° yaw cells centred on multiples of 15°, 10° pitch cells."""
    yaw_cell, pitch_cell = view_cells(pose_vector(pose), pitch_offset=PITCH_LIMIT)
    return int(yaw_cell), int(np.clip(pitch_cell, 0, PITCH_CELLS - 1))


# --- the compressed reference store -----------------------------------------------------------------
def compress_frame(frame: np.ndarray) -> bytes:
    """Lossless: zlib of the raw uint8 bytes (:func:`decompress_frame` returns the frame bit for bit)."""
    return zlib.compress(np.ascontiguousarray(frame, dtype=np.uint8).tobytes(), ZLIB_LEVEL)


def decompress_frame(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`compress_frame`; a ``ValueError`` if ``data`` is damaged or not of ``shape``."""
    try:
        raw = zlib.decompress(bytes(data))
    except zlib.error as exc:
        raise ValueError(f"a compressed reference frame is corrupted ({exc})") from exc
    if len(raw) != int(np.prod(shape)):
        raise ValueError(f"a compressed reference frame holds {len(raw)} bytes, expected {int(np.prod(shape))} for {shape}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()


def compressed_bound(nbytes: int) -> int:
    """The most bytes zlib's ``compress`` can return for ``nbytes`` of input, whatever the data (zlib's
    ``compressBound``): incompressible data is stored in raw blocks with a few bytes of framing."""
    return nbytes + (nbytes >> 12) + (nbytes >> 14) + (nbytes >> 25) + 13


# columns of RevisitTracker's per-pose index table
FIRST, FIRST_STEP, LAST, LAST_STEP, PREVIOUS = range(5)


class RevisitTracker:
    """An episode's revisit history, bounded by the world: one record per distinct pose (its first frame zlib
    compressed, first/last frame index and step, ``PREVIOUS``), not per frame; queries equal :func:`revisit_reference`
    on the full history (why, and the 1,176-record bound: docs/notes/code.md). Steps are recorded in order."""

    def __init__(self, tolerance: float = 1.0) -> None:
        self.tolerance = tolerance
        self.reset()

    def reset(self) -> None:
        self.cells: set[tuple[int, int]] = set()
        self.count = 0  # frames observed
        self.size = 0  # records (distinct poses)
        self._poses = np.zeros((16, 3), dtype=np.float64)  # (capacity, 3) record poses
        self._indices = np.zeros((16, 5), dtype=np.int64)  # (capacity, 5) FIRST .. PREVIOUS
        self._frames: list[bytes] = []  # first frame's pixels, zlib compressed, per record
        self._shape: tuple[int, ...] | None = None  # (H, W, 3) of every frame
        self._ids: dict[bytes, int] = {}  # pose bytes -> record
        self._by_first: dict[int, int] = {}  # first frame index -> record
        self.step: int | None = None  # step of the current (latest) block
        self._block_poses: list[np.ndarray] = []  # (3,) per frame of the current step
        self._block_frames: list[np.ndarray] = []

    # --- what the tracker holds ---------------------------------------------------------------
    @property
    def poses(self) -> np.ndarray:
        """``(R, 3)`` the distinct poses seen, in order of first sight."""
        return self._poses[: self.size].copy()

    @property
    def indices(self) -> np.ndarray:
        """``(R, 5)`` int64 per record: first index, first step, last index, last step, last index of an earlier step."""
        return self._indices[: self.size].copy()

    @property
    def block_start(self) -> int:
        """Index of the current step's first frame."""
        return self.count - len(self._block_poses)

    @property
    def block_poses(self) -> np.ndarray:
        """``(F, 3)`` poses of the current step's frames."""
        return np.asarray(self._block_poses, dtype=np.float64).reshape(-1, 3)

    @property
    def reference_bytes(self) -> int:
        """Bytes of the compressed reference store (the records' first frames)."""
        return sum(len(f) for f in self._frames)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held: the compressed reference store and the current step's raw frames."""
        return self.reference_bytes + sum(f.nbytes for f in self._block_frames)

    def frame(self, index: int) -> np.ndarray:
        """Pixels of frame ``index``: a record's first frame (every reference is one) or a frame of the current step."""
        if index >= self.block_start and index < self.count:
            return self._block_frames[index - self.block_start]
        if index in self._by_first:
            assert self._shape is not None
            return decompress_frame(self._frames[self._by_first[index]], self._shape)
        raise KeyError(f"frame {index} is not kept: the tracker holds the first frame of each pose and the current "
                       f"step's frames ({self.block_start}..{self.count - 1})")

    def first_step(self, index: int) -> int:
        """Step of frame ``index``, a record's first frame (every reference is one)."""
        return int(self._indices[self._by_first[index], FIRST_STEP])

    @property
    def coverage(self) -> float:
        return len(self.cells) / (YAW_CELLS * PITCH_CELLS)

    # --- queries ------------------------------------------------------------------------------
    def reference(self, pose: Pose | Sequence[float] | np.ndarray, step: int, away: float | None = 0.0,
                  before: int | None = None) -> int | None:
        """:func:`revisit_reference` of ``pose`` at ``step`` over the frames before index ``before`` (default: all),
        the frames of earlier steps eligible: the index of the earliest such frame it revisits, or None.
        ``step`` is the current step or a later one; ``before`` may only leave out frames of ``step``."""
        vec = pose_vector(pose)
        before = self.count if before is None else before
        current = self.step is not None and step == self.step
        if self.step is not None and step < self.step:
            raise ValueError(f"the tracker answers queries at its current step {self.step} or later, got step {step}")
        if not (self.block_start if current else self.count) <= before <= self.count:
            raise ValueError(f"before={before} may only leave out frames of step {step} "
                             f"(frames {self.block_start if current else self.count}..{self.count - 1})")
        if self.size == 0:
            return None
        ind = self._indices[: self.size]  # (R, 5)
        dist = pose_distances(self._poses[: self.size], vec)  # (R,)
        match = (dist <= self.tolerance) & (ind[:, FIRST_STEP] < step)
        if not match.any():
            return None
        ref = int(ind[match, FIRST].min())
        if away is None:
            return ref
        last_earlier = np.where(ind[:, LAST_STEP] < step, ind[:, LAST], ind[:, PREVIOUS])  # (R,) last frame of a step < step
        last_match = int(last_earlier[match].max())
        if np.any((dist > self.tolerance) & (dist >= away) & (last_earlier > last_match)):
            return ref
        if current and before > self.block_start:  # this step's frames before `before`, all after any match
            since = pose_distances(self.block_poses[: before - self.block_start], vec)
            if np.any((since > self.tolerance) & (since >= away)):
                return ref
        return None

    # --- recording ----------------------------------------------------------------------------
    def add_cells(self, poses: Sequence[Pose] | np.ndarray) -> int:
        """Count the view cells of ``poses`` (a block's frames) as covered; returns how many are new."""
        new = 0
        for pose in poses:
            cell = view_cell(pose)
            if cell not in self.cells:
                self.cells.add(cell)
                new += 1
        return new

    def record(self, step: int, pose: Pose | Sequence[float] | np.ndarray, frame: np.ndarray) -> None:
        """Add one frame (no query, no cells); a new pose's frame is compressed into the reference store."""
        vec = pose_vector(pose)
        frame = np.asarray(frame, dtype=np.uint8)
        if self._shape is None:
            self._shape = tuple(frame.shape)
        elif tuple(frame.shape) != self._shape:
            raise ValueError(f"frames of one episode share one shape: got {frame.shape}, recorded {self._shape}")
        if self.step is not None and step < self.step:
            raise ValueError(f"steps are recorded in order: got step {step} after step {self.step}")
        if step != self.step:
            self.step, self._block_poses, self._block_frames = int(step), [], []
        key = vec.tobytes()
        index, r = self.count, self._ids.get(key)
        if r is None:
            r = self._add(vec, compress_frame(frame), index)
            self._indices[r] = (index, step, index, step, -1)
        else:
            row = self._indices[r]
            if row[LAST_STEP] < step:
                row[PREVIOUS] = row[LAST]
            row[LAST], row[LAST_STEP] = index, step
        self._block_poses.append(vec)
        self._block_frames.append(np.array(frame, copy=True))  # a copy: a view would keep its whole block alive
        self.count += 1

    def _add(self, vec: np.ndarray, frame: bytes, first: int) -> int:
        r = self.size
        if r == len(self._poses):
            self._poses = np.concatenate([self._poses, np.zeros_like(self._poses)])
            self._indices = np.concatenate([self._indices, np.zeros_like(self._indices)])
        self._poses[r] = vec
        self._frames.append(frame)
        self._ids[vec.tobytes()] = r
        self._by_first[first] = r
        self.size += 1
        return r

    # --- snapshots ----------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray | int | None]:
        """Everything the tracker holds (arrays are copies; ``count``/``step`` plain ints): :meth:`load` restores it.
        The reference store travels compressed, as held: ``store`` (uint8, the records' zlib streams end to end) and
        ``store_sizes`` (int64, one length per record), so a snapshot is exact and small."""
        shape = self._shape or (0, 0, 3)
        return {"count": self.count, "step": self.step, "poses": self.poses, "indices": self.indices,
                "store": np.frombuffer(b"".join(self._frames), dtype=np.uint8).copy(),
                "store_sizes": np.asarray([len(f) for f in self._frames], dtype=np.int64),
                "frame_shape": np.asarray(shape, dtype=np.int64),
                "block_poses": self.block_poses,
                "block_frames": np.asarray(self._block_frames, dtype=np.uint8).reshape(-1, *shape),
                "cells": np.asarray(sorted(self.cells), dtype=np.int64).reshape(-1, 2)}

    def load(self, state: dict) -> None:
        """Inverse of :meth:`state`. Checks everything first (the arrays agree; every compressed frame decompresses
        to its shape: a damaged store is a ``ValueError``) and changes nothing unless all is well."""
        poses = np.asarray(state["poses"], dtype=np.float64).reshape(-1, 3)
        indices = np.asarray(state["indices"], dtype=np.int64).reshape(-1, 5)
        store, sizes = np.asarray(state["store"], dtype=np.uint8).reshape(-1), np.asarray(state["store_sizes"], dtype=np.int64).reshape(-1)
        shape = tuple(int(v) for v in np.asarray(state["frame_shape"]).reshape(-1))
        block_frames = np.asarray(state["block_frames"], dtype=np.uint8)
        block_poses = np.asarray(state["block_poses"], dtype=np.float64).reshape(-1, 3)
        if not len(poses) == len(indices) == len(sizes) or len(block_poses) != len(block_frames):
            raise ValueError(f"revisit history arrays disagree: {len(poses)} poses, {len(indices)} index rows, "
                             f"{len(sizes)} stored frames, {len(block_poses)} current poses, {len(block_frames)} current frames")
        if len(shape) != 3 or (sizes < 0).any() or int(sizes.sum()) != len(store):
            raise ValueError(f"the revisit reference store is corrupted: {len(store)} bytes for record sizes summing to "
                             f"{int(sizes.sum())}, frame shape {shape}")
        ends = np.cumsum(sizes)
        frames = [store[end - size:end].tobytes() for end, size in zip(ends, sizes)]
        for r, data in enumerate(frames):
            try:
                decompress_frame(data, shape)
            except ValueError as exc:
                raise ValueError(f"the revisit reference store is corrupted at record {r} of {len(frames)}: {exc}") from exc
        self.reset()
        self._shape = shape if len(frames) or len(block_frames) else None
        self.count, self.step = int(state["count"]), None if state["step"] is None else int(state["step"])
        for vec, row, data in zip(poses, indices, frames):
            r = self._add(vec.copy(), data, int(row[FIRST]))
            self._indices[r] = row
        self._block_poses = [p.copy() for p in block_poses]
        self._block_frames = [f.copy() for f in block_frames]
        self.cells = {(int(a), int(b)) for a, b in np.asarray(state["cells"]).reshape(-1, 2)}


@functools.lru_cache(maxsize=8)
def reachable_poses(start: tuple[float, ...] | None = None, block_ends: bool = False) -> np.ndarray:
    """``(P, 3)`` every distinct frame pose the action table can show (``block_ends``: every block-end pose, the
    observations), from ``start`` (yaw, pitch, fov) or from the env's start poses (yaw a multiple of 15°, pitch
    0°, fov 60°): the bound of :class:`RevisitTracker`."""
    ends = [Pose(*start)] if start is not None else [Pose(15.0 * k, 0.0, DEFAULT_FOV) for k in range(24)]
    seen, todo = set(ends), list(ends)
    frames = {p.as_array().tobytes(): p.as_array() for p in ends}
    while todo:
        pose = todo.pop()
        for action in range(len(ACTION_TABLE)):
            target = apply_action(pose, action)
            shown = [target] if block_ends else frame_poses(pose, target)
            frames.update((p.as_array().tobytes(), p.as_array()) for p in shown)
            if target not in seen:
                seen.add(target)
                todo.append(target)
    out = np.stack(list(frames.values()))  # (P, 3)
    out.setflags(write=False)
    return out


def reference_bound(height: int, width: int, start: tuple[float, ...] | None = None) -> tuple[int, int]:
    """(records, bytes): the most a :class:`RevisitTracker` recording observations holds from ``start`` (None: the
    env's start poses): one record per reachable block-end pose, each at most ``compressed_bound(H x W x 3)`` bytes
    (1,176 records, 14,469,504 B = 13.8 MiB at 64 x 64 from the env's start poses)."""
    records = len(reachable_poses(None if start is None else tuple(float(v) for v in start), block_ends=True))
    return records, records * compressed_bound(height * width * 3)

