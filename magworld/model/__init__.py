"""The MAG model core: autoencoder, text encoder, causal block transformer, KV cache, memory model.

Public API (see each module's docstring for shapes):

- :class:`Autoencoder` frames uint8 (B, 3, 64, 64) <-> latents (B, 8, 16, 16) (the bundled autoencoder)
- :func:`make_text_encoder` prompts -> (B, 1, 384); the empty prompt is the zero vector
- :class:`BlockTransformer` ``(x_t, t, pose, text, cache) -> Output(prediction=velocity, ...)``;
  :func:`~magworld.model.generator.write_block` puts a clean block's key/values in a cache (the memory
  model's clean pass), :func:`~magworld.model.generator.write_clip` a whole training clip's
- :class:`KVCache` / :class:`CacheConfig` with policies full, window, mag
- :class:`MemoryModel` (stage 1); every attention mask in :mod:`magworld.model.masks`
- :func:`transformer_preset` size registry (wide16 = the bundled shape and the default, tiny, small, base, wan1.3b)
- :func:`save_checkpoint` / :func:`load_into` (safetensors + JSON), :func:`load_bundled`
"""

from .autoencoder import Autoencoder, AutoencoderConfig
from .cache import CacheConfig, CacheSnapshot, KVCache
from .checkpoint import CheckpointError, load_into, read_meta, save_checkpoint
from .config import PRESETS, TransformerConfig, transformer_preset
from .flow import FlowConfig
from .masks import memory_attention_mask
from .memory_model import MemoryConfig, MemoryModel
from .pretrained import load_autoencoder, load_bundled, load_memory
from .text import HashingTextEncoder, MiniLMTextEncoder, TextConfig, make_text_encoder
from .transformer import BlockTransformer, Output

__all__ = [
    "Autoencoder", "AutoencoderConfig", "CacheConfig", "CacheSnapshot", "KVCache", "CheckpointError", "load_into",
    "read_meta", "save_checkpoint", "PRESETS", "TransformerConfig", "transformer_preset", "FlowConfig",
    "MemoryConfig", "MemoryModel", "memory_attention_mask", "load_autoencoder", "load_bundled", "load_memory",
    "HashingTextEncoder", "MiniLMTextEncoder", "TextConfig", "make_text_encoder", "BlockTransformer", "Output",
]
