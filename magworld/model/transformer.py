"""The causal block transformer shared by the memory model and the generator: ``(x_t, t, pose, text, cache) ->
velocity`` on latent frames (the architecture: docs/notes/code.md).
"""

from __future__ import annotations

import bisect
import math
from typing import NamedTuple

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from .cache import CacheConfig, KVCache
from .config import TransformerConfig
from .rope import Rope3D, Turn, rotate, time_positions

try:  # optional CUDA kernel; SDPA is the portable default
    from flash_attn import flash_attn_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_func = None


class Output(NamedTuple):
    prediction: torch.Tensor  # (B, T, C, h, w) velocity
    keys: list[torch.Tensor] | None  # per layer (B, heads, T, N, hd), as a cache stores them (see magworld.model.rope)
    values: list[torch.Tensor] | None


class Angles(NamedTuple):
    """One call's rotations, shared by every layer."""

    own: Turn  # queries, and the keys they attend with
    stored: Turn | None  # keys as a cache stores them (None: keys/values not returned)


class History(NamedTuple):
    """One layer's cached keys/values as a block reads them: keys in pieces (frames already at the oldest position,
    corrected young frames), each (B, heads, F_i*N, hd), concatenated once with the block's own keys."""

    keys: tuple[torch.Tensor, ...]
    values: torch.Tensor  # (B, heads, F*N, hd)
    valid: torch.Tensor | None = None  # (B, F*N) bool: which cached keys are real (mag-recall pads worlds); None: all


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, Lq, hd) x (B, H, Lk, hd) -> (B, H, Lq, hd); flash-attn on CUDA half precision without a mask. ``mask``
    (Lq, Lk) or per batch element (B, Lq, Lk) / (B, 1, Lq, Lk), True = may attend."""
    if mask is not None and mask.dim() == 3:
        mask = mask.unsqueeze(1)  # (B, 1, Lq, Lk): the same for every head
    if flash_attn_func is not None and mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        return flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled by 1000), (...,) -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float().unsqueeze(-1) * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, T, N, D) with per-frame shift/scale (B, T, 1, D)."""
    return x * (1 + scale) + shift


class SelfAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)
        self.q_norm = nn.RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(cfg.head_dim) if cfg.qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, angles: Angles, past: History | None,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, D) -> (out (B, L, D), this call's keys and values as a cache stores them (keys None without stored
        angles), each (B, H, L, hd)); ``past``: the cached keys (in pieces) placed for this call."""
        q, k, v = rearrange(self.qkv(x), "b l (k h d) -> k b h l d", k=3, h=self.heads)  # each (B, H, L, hd)
        own, stored = angles
        q, k = rotate(self.q_norm(q), own), self.k_norm(k)
        k_now = rotate(k, own)
        if past is None:
            keys, values = k_now, v
        else:  # one copy: [cached pieces ; this call]
            keys, values = torch.cat([*past.keys, k_now], 2), torch.cat([past.values, v], 2)
            if past.valid is not None:  # padded worlds: no query reads a padding key
                real = torch.cat([past.valid, past.valid.new_ones(past.valid.shape[0], k_now.shape[2])], 1)  # (B, Lk)
                real = real[:, None, None, :]  # (B, 1, 1, Lk)
                if mask is not None and mask.dim() == 3:
                    mask = mask.unsqueeze(1)  # (B, 1, Lq, Lk)
                mask = real if mask is None else real & mask
        out = attention(q, keys, values, mask)  # (B, H, L, hd)
        return self.out(rearrange(out, "b h l d -> b l (h d)")), None if stored is None else rotate(k, stored), v


class CrossAttention(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) attends to context (B, S, D)."""
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=self.heads)
        k, v = rearrange(self.kv(context), "b s (k h d) -> k b h s d", k=2, h=self.heads)
        return self.out(rearrange(attention(q, k, v), "b h l d -> b l (h d)"))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.modulation = nn.Parameter(torch.zeros(6, cfg.dim))  # per-layer adaLN table
        self.norm1 = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.cross = CrossAttention(cfg)
        self.norm3 = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.mlp_dim, cfg.dim))

    def forward(self, x: torch.Tensor, mod: torch.Tensor, angles: Angles,
                context: torch.Tensor, past: History | None, mask: torch.Tensor | None):
        """x (B, T, N, D); mod (B, T, 6, D) -> (x, keys, values)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod + self.modulation).unsqueeze(2).unbind(3)  # (B, T, 1, D)
        h = modulate(self.norm1(x), shift1, scale1).flatten(1, 2)  # (B, T*N, D)
        a, k, v = self.attn(h, angles, past, mask)
        x = x + gate1 * a.view_as(x)
        x = x + self.cross(self.norm2(x).flatten(1, 2), context).view_as(x)
        x = x + gate2 * self.mlp(modulate(self.norm3(x), shift2, scale2))
        return x, k, v


class BlockTransformer(nn.Module):
    """The network: (x_t, t, pose, text, cache) -> velocity (docs/notes/code.md)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.dim)
        self.text_embed = nn.Sequential(nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"),
                                        nn.Linear(cfg.dim, cfg.dim))
        self.null_text = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.time_embed = nn.Sequential(nn.Linear(cfg.time_freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_proj = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim))
        self.rope = Rope3D(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.head_norm = nn.LayerNorm(cfg.dim, elementwise_affine=False, eps=1e-6)
        self.head_modulation = nn.Parameter(torch.zeros(2, cfg.dim))
        self.head = nn.Linear(cfg.dim, cfg.patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for zero in (self.time_proj[-1], self.head):  # adaLN-zero: gates and output start at 0
            nn.init.zeros_(zero.weight)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) -> (B, T, N, C*p*p)."""
        return rearrange(x, "b t c (gh p) (gw q) -> b t (gh gw) (c p q)", p=self.cfg.patch_size, q=self.cfg.patch_size)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, N, C*p*p) -> (B, T, C, h, w)."""
        return rearrange(x, "b t (gh gw) (c p q) -> b t c (gh p) (gw q)", gh=self.cfg.grid, p=self.cfg.patch_size,
                         q=self.cfg.patch_size)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, pose: torch.Tensor, text: torch.Tensor,
                cache: KVCache | None = None, *, frame_index: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, return_kv: bool = False,
                token_bias: torch.Tensor | None = None) -> Output:
        """Velocity of frames x_t (B, T, C, h, w) at per-frame times t (B, T), poses (B, T, 3), text (B, S, text_dim),
        at absolute ``frame_index`` (T,) (default: right after the cache); ``mask`` (T*N, F*N + T*N) over [cache ;
        frames]; ``return_kv``: keys/values per layer (B, heads, T, N, hd); ``token_bias`` (B, T, N, D) adds to the
        tokens."""
        batch, frames = x_t.shape[:2]
        if frame_index is None:
            reference = 0 if cache is None else cache.next_frame
            frame_index = torch.arange(reference, reference + frames, device=x_t.device)
        else:
            reference = int(frame_index[0])
        own, stored = self.rope(frame_index.to(torch.float32) - reference, pose)  # each (B, T*N, hd/2)
        angles = Angles(Turn.of(own), Turn.of(stored) if return_kv else None)  # once for every layer
        history = self.read_cache(cache, reference, pose)
        x = self.patch_embed(self.patchify(x_t))  # (B, T, N, D)
        if token_bias is not None:
            x = x + token_bias
        temb = self.time_embed(timestep_embedding(t, self.cfg.time_freq_dim))  # (B, T, D)
        mod = self.time_proj(temb).unflatten(-1, (6, self.cfg.dim))  # (B, T, 6, D)
        context = torch.cat([self.null_text.expand(batch, -1, -1), self.text_embed(text)], dim=1)  # (B, 1+S, D)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, mod, angles, context, None if history is None else history[i], mask)
            if return_kv:
                keys.append(k.unflatten(2, (frames, -1)))  # (B, H, T, N, hd)
                values.append(v.unflatten(2, (frames, -1)))
        shift, scale = (temb.unsqueeze(2) + self.head_modulation).unsqueeze(2).unbind(3)  # (B, T, 1, D)
        out = self.head(modulate(self.head_norm(x), shift, scale))  # (B, T, N, C*p*p)
        return Output(self.unpatchify(out), keys if return_kv else None, values if return_kv else None)

    def read_cache(self, cache: KVCache | None, reference: int, pose: torch.Tensor | None = None) -> list[History] | None:
        """Per layer, the cache as a call whose first frame is ``reference`` reads it (None if empty): frames older than
        ``max_age_frames`` as stored, younger ones moved to their time positions once per (contents, reference); a
        ``mag-recall`` cache gives each world its recalled frames for the poses (B, T, 3)."""
        if cache is None or cache.frames() == 0:
            return None
        cfg = self.cfg
        if cache.recalls:
            if pose is None:
                raise ValueError("a mag-recall cache recalls frames by the reading block's poses; pass pose")
            return cache.view(("recall", reference, cfg.max_age_frames, cfg.rope_theta, cfg.rope_dims[0],
                               tuple(pose.detach().flatten().tolist())), lambda: self._recall(cache, reference, pose))
        settled = bisect.bisect_right(cache.frame_index, reference - cfg.max_age_frames)  # frame_index ascends
        key = ("rope-time", reference, cfg.max_age_frames, cfg.rope_theta, cfg.rope_dims[0])

        def build() -> list[torch.Tensor]:
            time = time_positions(cache.frame_index[settled:], reference, cfg.max_age_frames, cache.keys[0].device)
            return [self.rope.correct_history(k[:, :, settled:], time).flatten(2, 3) for k in cache.keys]

        young = cache.view(key, build)
        return [History((k[:, :, :settled].flatten(2, 3), y), v.flatten(2, 3))  # (B, H, F*N, hd) in all
                for k, y, v in zip(cache.keys, young, cache.values)]

    def _recall(self, cache: KVCache, reference: int, pose: torch.Tensor) -> list[History]:
        """mag-recall: per layer, every world's recalled frames with keys at their own bounded ages (B, F: per world)."""
        keys, values, frames, valid = cache.recalled(reference, pose)  # per layer (B, H, A, N, hd); (B, A) x 2
        time = time_positions(frames, reference, self.cfg.max_age_frames, frames.device)  # (B, A)
        tokens = keys[0].shape[3]
        real = None if bool(valid.all()) else valid.repeat_interleave(tokens, 1)  # (B, A*N)
        return [History((self.rope.correct_history(k, time).flatten(2, 3),), v.flatten(2, 3), real)
                for k, v in zip(keys, values)]

    def new_cache(self, config: CacheConfig) -> KVCache:
        """An empty cache for this network's layer stack."""
        return KVCache(config, self.cfg.depth)
