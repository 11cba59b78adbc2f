"""Attention masks (bool, True = may attend), each defined once, in frames, then expanded to tokens.
"""

from __future__ import annotations

import torch

from .cache import CacheConfig, KVCache
from .recall import recall_held


def held_frames(config: CacheConfig, frames: int, block_frames: int, poses: torch.Tensor | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (F, F): may a query in frame q's block read frame k of an earlier block, i.e. does ``config``'s cache
    still hold k when q's block is generated? ``mag-recall`` depends on the clip's poses (B, F, 3): (B, F, F), the
    run-time store replayed (:func:`~magworld.model.recall.recall_held`)."""
    if config.policy == "mag-recall":
        if poses is None or poses.shape[1] != frames:
            raise ValueError(f"mag-recall recalls by view: held_frames needs the clip's poses (B, {frames}, 3)")
        return recall_held(poses, block_frames, config.kept, config.sink, config.recall, config.fov_cell,
                           config.rays).to(device)
    f = torch.arange(frames, device=device)
    start = (f // block_frames * block_frames)[:, None]  # (F, 1) first frame of the query's block
    key = f[None, :]  # (1, F)
    earlier = key < start
    compressed = earlier & kept_frames(key, block_frames, config.kept)
    if config.policy == "mag":
        return compressed
    if config.policy == "mag-ring":
        return compressed & ((key < config.sink) | (key >= start - config.ring * block_frames))
    if config.policy == "window":
        return earlier & ((key < config.sink) | (key >= start - config.window))
    return earlier  # full


def same_block(frames: int, block_frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool (F, F): are frames q and k in the same block?"""
    block = torch.arange(frames, device=device) // block_frames
    return block[:, None] == block[None, :]  # (F, F)


def kept_frames(frames: torch.Tensor, block_frames: int, kept: int) -> torch.Tensor:
    """Bool, per absolute frame index: is it one of its block's last ``kept`` frames (the compressed ones)?"""
    return frames % block_frames >= block_frames - kept


def to_tokens(frame_mask: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
    """A frame mask (..., Fq, Fk) expanded to tokens (..., Fq*N, Fk*N)."""
    return frame_mask.repeat_interleave(tokens_per_frame, -2).repeat_interleave(tokens_per_frame, -1)


def writer_mask(held: torch.Tensor, block_frames: int, kept: int, tokens_per_frame: int) -> torch.Tensor:
    """Training mask (L, L) of the memory model's clean pass over a whole clip, (B, L, L) for a per-clip ``held``:
    block i's clean queries see all of block i and the kept frames of the earlier blocks ``held`` holds
    (:func:`held_frames`)."""
    frames = held.shape[-1]
    visible = kept_frames(torch.arange(frames, device=held.device), block_frames, kept)[None]  # (1, F)
    return to_tokens((held & visible) | same_block(frames, block_frames, held.device), tokens_per_frame)


def reader_mask(held: torch.Tensor, block_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """Training mask (L, 2L) of the generator's noisy clip over [clean key/values of the clip ; noisy clip], (B, L, 2L)
    for a per-clip ``held``: noisy block i sees the clean frames of earlier blocks ``held`` holds and every noisy frame
    of block i (never its own clean frames, never a later block)."""
    frames = held.shape[-1]
    same = same_block(frames, block_frames, held.device).expand(*held.shape[:-2], frames, frames)
    return to_tokens(torch.cat([held, same], -1), tokens_per_frame)  # frames (F, 2F) or (B, F, 2F)


def cache_writer_mask(cache: KVCache, frames: int, block_frames: int, kept: int, tokens_per_frame: int,
                      device: torch.device | str) -> torch.Tensor | None:
    """Run-time mask (T*N, F*N + T*N) of the memory model's clean pass of a new block over ``cache``; None when every
    cached frame is a kept frame (the compressed policies or an empty cache)."""
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
    """Boolean (L, L) mask for the memory model's training sequence ``[clean frames | noisy frames]``: a clean query of
    block i sees the kept clean frames of earlier blocks and all of block i's clean frames, a noisy one the kept clean
    frames of blocks <= i and block i's noisy frames (the full definition: docs/notes/code.md)."""
    frames = blocks * block_frames
    history = held_frames(CacheConfig("mag", kept=kept), frames, block_frames, device=device)  # kept, earlier blocks
    same = same_block(frames, block_frames, device)
    own_kept = same & kept_frames(torch.arange(frames, device=device), block_frames, kept)[None]
    frame_mask = torch.cat([torch.cat([history | same, torch.zeros_like(same)], 1),
                            torch.cat([history | own_kept, same], 1)], 0)  # (2F, 2F)
    return to_tokens(frame_mask, tokens_per_frame)  # (L, L)
