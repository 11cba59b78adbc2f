"""The MAG model core: autoencoder, text encoder, causal block transformer, KV cache, memory model (public API:
docs/notes/model-core.md).
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
