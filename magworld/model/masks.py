"""Attention masks (bool, True = may attend), each defined once, in frames, then expanded to tokens.
"""

from __future__ import annotations

import torch

from .cache import POLICIES, CacheConfig, KVCache
from .recall import recall_held


def held_frames(policy: str, frames: int, block_frames: int, kept: int, window: int, sink: int,
                device: torch.device | str = "cpu", ring: int = 21) -> torch.Tensor:
    """Bool (F, F): may a query in frame q's block read cached frame k, under ``policy``? Only earlier blocks.

    Row q, column k is True when frame k belongs to a block before q's block and the policy's cache still
    holds it when q's block is generated.
    """
    f = torch.arange(frames, device=device)
    start = (f // block_frames * block_frames)[:, None]  # (F, 1) first frame of the query's block
    key = f[None, :]  # (1, F)
    earlier = key < start
    if policy == "mag":
        return earlier & kept_frames(key, block_frames, kept)
    if policy == "mag-ring":
        return earlier & kept_frames(key, block_frames, kept) & ((key < sink) | (key >= start - ring * block_frames))
    if policy == "mag-recall":
        raise ValueError("mag-recall's held frames depend on the clip's poses; use held_by(config, frames, block_frames, poses)")
    if policy == "window":
        return earlier & ((key < sink) | (key >= start - window))
    if policy == "full":
        return earlier
    raise ValueError(f"unknown memory policy {policy!r}; choose one of {', '.join(POLICIES)}")


def held_by(config: CacheConfig, frames: int, block_frames: int, poses: torch.Tensor | None = None,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """:func:`held_frames` of a cache config, (F, F); for ``mag-recall`` per clip of poses (B, F, 3), (B, F, F)."""
    if config.policy != "mag-recall":
        return held_frames(config.policy, frames, block_frames, config.kept, config.window, config.sink, device, config.ring)
    if poses is None or poses.shape[1] != frames:
        raise ValueError(f"mag-recall recalls by view: held_by needs the clip's poses (B, {frames}, 3)")
    return recall_held(poses, block_frames, config.kept, config.sink, config.recall, config.fov_cell,
                       config.rays).to(device)


def same_block(frames: int, block_frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (F, F): are frames q and k in the same block?"""
    block = torch.arange(frames, device=device) // block_frames
    return block[:, None] == block[None, :]  # (F, F)


def kept_frames(frames: torch.Tensor, block_frames: int, kept: int) -> torch.Tensor:
    """Bool, per absolute frame index: is it one of its block's last ``kept`` frames (the compressed ones)?"""
    return frames % block_frames >= block_frames - kept


def writer_mask(policy: str, frames: int, block_frames: int, kept: int, window: int, sink: int,
                tokens_per_frame: int, device: torch.device | str = "cpu", held: torch.Tensor | None = None) -> torch.Tensor:
    """Training mask (L, L) of the memory model's clean pass over a whole clip of ``frames`` frames.

    Block i's clean queries see all of block i and the kept frames of the earlier blocks ``policy`` holds.
    ``held`` (F, F) or per clip (B, F, F) replaces :func:`held_frames` (:func:`held_by`); then the mask is (B, L, L).
    """
    visible = kept_frames(torch.arange(frames, device=device), block_frames, kept)[None]  # (1, F)
    if held is None:
        held = held_frames(policy, frames, block_frames, kept, window, sink, device)
    frame_mask = (held.to(device) & visible) | same_block(frames, block_frames, device)  # (F, F) or (B, F, F)
    return frame_mask.repeat_interleave(tokens_per_frame, -2).repeat_interleave(tokens_per_frame, -1)


def reader_mask(policy: str, frames: int, block_frames: int, kept: int, window: int, sink: int,
                tokens_per_frame: int, device: torch.device | str = "cpu", held: torch.Tensor | None = None) -> torch.Tensor:
    """Training mask (L, 2L) of the generator's noisy clip over [clean key/values of the clip ; noisy clip].

    Noisy block i sees the clean frames of earlier blocks that ``policy`` holds and every noisy frame of
    block i (never its own clean frames, never a later block). ``held``: as in :func:`writer_mask`.
    """
    history = held_frames(policy, frames, block_frames, kept, window, sink, device) if held is None else held.to(device)
    same = same_block(frames, block_frames, device).expand(*history.shape[:-2], frames, frames)
    frame_mask = torch.cat([history, same], -1)  # (F, 2F) or (B, F, 2F)
    return frame_mask.repeat_interleave(tokens_per_frame, -2).repeat_interleave(tokens_per_frame, -1)


def cache_writer_mask(cache: KVCache, frames: int, block_frames: int, kept: int, tokens_per_frame: int,
                      device: torch.device | str) -> torch.Tensor | None:
    """Run-time mask (T*N, F*N + T*N) of the memory model's clean pass of a new block over ``cache``.

    None (no mask) when every cached frame is a kept frame (the compressed policies or an empty cache).
    """
    if cache.recalls:  # a mag-recall store holds kept frames only
        return None
    held = torch.tensor(cache.frame_index, device=device, dtype=torch.long)
    visible = kept_frames(held, block_frames, kept)
    if bool(visible.all()):
        return None
    keys = torch.cat([visible.repeat_interleave(tokens_per_frame),
                      torch.ones(frames * tokens_per_frame, dtype=torch.bool, device=device)])
    return keys[None].expand(frames * tokens_per_frame, -1)


def memory_attention_mask(blocks: int, block_frames: int, kept: int, tokens_per_frame: int,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean (L, L) mask, True = may attend, for the sequence ``[clean frames | noisy frames]``.

    Both halves hold ``blocks * block_frames`` frames of ``tokens_per_frame`` tokens, clean frame f and
    noisy frame f being the same frame. Frame f is in block ``f // block_frames`` and is *kept* when it
    is one of its block's last ``kept`` frames. With query in block i:

    - a clean query sees the kept clean frames of blocks < i (the compressed history) and every clean
      frame of block i (full intra-block attention: the encoder);
    - a noisy query sees the kept clean frames of blocks <= i (history + this block's compressed
      frame) and every noisy frame of block i; the other clean frames of block i are masked out;
    - nobody sees a later block, and clean queries never see noisy keys.
    """
    frames = blocks * block_frames
    history = held_frames("mag", frames, block_frames, kept, 0, 0, device)  # kept frames of earlier blocks
    same = same_block(frames, block_frames, device)
    own_kept = same & kept_frames(torch.arange(frames, device=device), block_frames, kept)[None]
    frame_mask = torch.cat([torch.cat([history | same, torch.zeros_like(same)], 1),
                            torch.cat([history | own_kept, same], 1)], 0)  # (2F, 2F)
    return frame_mask.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)  # (L, L)
