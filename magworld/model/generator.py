"""The generator (MAG stage 2): denoises the next block while reading the history cache the memory model writes;
who writes and reads what under each policy: docs/notes/code.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .cache import POLICIES, CacheConfig, KVCache
from .config import TransformerConfig
from .flow import FlowConfig
from .masks import cache_writer_mask, held_frames, writer_mask
from .transformer import BlockTransformer, Output


@dataclass
class GeneratorConfig:
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    flow: FlowConfig = field(default_factory=lambda: FlowConfig(shift=2.0, steps=4, mode="renoise"))
    kept: int = 1  # frames per block the memory model keeps (must match the memory model)
    window: int = 3  # window policy: recent frames kept (one block)
    sink: int = 3  # window policy: first frames kept (the first block); mag-ring/mag-recall: their kept frames
    ring: int = 21  # mag-ring: blocks whose compressed frames are kept besides the sink (the paper's 21)
    recall: int = 8  # mag-recall: stored frames recalled per block besides the sink and the last block (K)
    recall_rays: int = 16  # mag-recall: view overlap measured on recall_rays x recall_rays rays
    fov_cell: float = 20.0  # mag-recall: field-of-view cell of the store's view keys (degrees)
    reproject: bool = False  # also read the previous block's last frame reprojected to each new pose (carry_condition)

    def __post_init__(self) -> None:
        if not 1 <= self.kept <= self.transformer.block_frames:
            raise ValueError(f"kept must be in 1..block_frames={self.transformer.block_frames}, got {self.kept}")

    def cache_config(self, policy: str) -> CacheConfig:
        """The run-time cache of a memory policy (one of :data:`~magworld.model.cache.POLICIES`)."""
        if policy not in POLICIES:
            raise ValueError(f"unknown memory policy {policy!r}; choose one of {', '.join(POLICIES)}")
        return CacheConfig(policy=policy, window=self.window, sink=self.sink, kept=self.kept, ring=self.ring,
                           recall=self.recall, rays=self.recall_rays, fov_cell=self.fov_cell)


def clean_pass(memory: nn.Module, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
               frame_index: torch.Tensor | None = None, cache: KVCache | None = None,
               mask: torch.Tensor | None = None) -> Output:
    """The memory model's clean pass (t = 0) over final frames x0 (B, T, C, h, w) at ``frame_index`` (default: right
    after ``cache``) under ``mask``; returns their key/values (the one writer of :func:`write_block` and
    :func:`write_clip`)."""
    t = torch.zeros(x0.shape[:2], device=x0.device, dtype=x0.dtype)
    return memory.net(x0, t, pose, text, cache, frame_index=frame_index, mask=mask, return_kv=True)


def write_block(memory: nn.Module, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor, cache: KVCache) -> None:
    """Run-time writer: the clean pass over a final block x0 (B, T, C, h, w) right after the cache's frames appends
    its key/values to ``cache`` (the cache's policy picks the frames kept)."""
    tc = memory.cfg.transformer
    frames, start = x0.shape[1], cache.next_frame
    mask = cache_writer_mask(cache, frames, tc.block_frames, memory.cfg.kept, tc.tokens_per_frame, x0.device)
    out = clean_pass(memory, x0, pose, text, cache=cache, mask=mask)
    cache.append(out.keys, out.values, list(range(start, start + frames)), poses=pose)


def write_clip(memory: nn.Module, x0: torch.Tensor, pose: torch.Tensor, text: torch.Tensor, policy: CacheConfig,
               frame_index: torch.Tensor) -> KVCache:
    """Training writer: the clean pass over a whole clip x0 (B, T, C, h, w) at ``frame_index`` (T,) in one parallel
    pass under :func:`writer_mask` — the key/values :func:`write_block` would write block by block under ``policy``,
    for every frame (a ``full`` cache; the generator's :func:`reader_mask` picks what each block may read)."""
    tc = memory.cfg.transformer
    oldest = x0.shape[1] - tc.block_frames  # age of frame 0 for the clip's last block
    if oldest > tc.max_age_frames:
        raise ValueError(f"a clip of {x0.shape[1]} frames shows ages up to {oldest} frames, but the model sees cached "
                         f"frames at most max_age_frames={tc.max_age_frames} old at run time; use clips of at most "
                         f"{tc.max_age_frames + tc.block_frames} frames or raise TransformerConfig.max_age_frames")
    held = held_frames(policy, x0.shape[1], tc.block_frames, pose, x0.device)  # (F, F), mag-recall (B, F, F)
    mask = writer_mask(held, tc.block_frames, policy.kept, tc.tokens_per_frame)
    out = clean_pass(memory, x0, pose, text, frame_index, mask=mask)
    cache = KVCache(CacheConfig(policy="full"), tc.depth)
    cache.append(out.keys, out.values, frame_index.tolist())
    return cache


class Generator(nn.Module):
    """The stage-2 network and its configuration; sampling lives in :mod:`magworld.model.sampler`."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = BlockTransformer(cfg.transformer)
        tc = cfg.transformer
        if cfg.reproject:  # latents of the reprojected last frame + coverage, embedded and added to the noisy tokens
            self.cond_embed = nn.Linear((tc.latent_channels + 1) * tc.patch_size ** 2, tc.dim)
            nn.init.zeros_(self.cond_embed.weight)  # starts as the unconditioned network
            nn.init.zeros_(self.cond_embed.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
                cache: KVCache | None = None, *, frame_index: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> Output:
        """Velocity of the noisy frames x_t (B, T, C, h, w) at times t (B, T); see :class:`BlockTransformer`.
        ``cond`` (B, T, C + 1, h, w): the geometric input of :func:`~magworld.model.reproject.carry_condition`,
        required by (and only by) generators with ``reproject``."""
        if self.cfg.reproject != (cond is not None):
            raise ValueError(f"this generator has reproject={self.cfg.reproject}: pass cond exactly when it is True")
        bias = self.cond_embed(self.net.patchify(cond)) if cond is not None else None  # (B, T, N, D)
        return self.net(x_t, t, pose, text, cache, frame_index=frame_index, mask=mask, token_bias=bias)

    def new_cache(self, policy: str) -> KVCache:
        return self.net.new_cache(self.cfg.cache_config(policy))
