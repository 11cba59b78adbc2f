"""``WorldModel``: the MAG runtime (autoencoder, text encoder, generator, memory model and cache) as a
:class:`~magworld.protocol.BlockWorld` of N worlds; :meth:`WorldModel.generate` is the one path that samples, carries
and writes a block (docs/notes/code.md).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
from einops import rearrange

from magworld.protocol import BlockPoses, block_poses_array

from .autoencoder import Autoencoder
from .cache import CacheSnapshot
from .checkpoint import CheckpointError, load_model, read_meta
from .config import TransformerConfig
from .generator import Generator, GeneratorConfig, write_block
from .memory_model import MemoryModel
from .pretrained import WEIGHTS_DIR, bundled_path, load_autoencoder, load_memory
from .reproject import carry_condition, keep_seen_pixels, warp_block
from .sampler import BlockSampler, Known
from .text import TextConfig, make_text_encoder

GENERATOR_FILE = "generator.safetensors"
# How a reproject world uses the last frame shown, reprojected to the new poses (``carry``): ``sharp`` keeps the cells
# and pixels it saw and shows them as shown, ``condition`` only gives it to the generator (docs/notes/code.md)
CARRY_MODES = ("sharp", "condition")
MANIFEST_FILE = "generator.manifest.json"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; asking for CUDA without it is an error."""
    device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but CUDA is not available here "
                           f"(torch.cuda.is_available() is False); use device='cpu' or device='auto'")
    return torch.device(device)


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_generator(path: str | Path) -> Generator:
    """A generator checkpoint (safetensors + JSON sidecar of kind ``generator``), in eval mode."""
    return load_model(path, "generator", Generator, GeneratorConfig, "pass a generator checkpoint (magworld train "
                      "stage=generator writes <run>/generator.safetensors) or retrain it")


@dataclass
class WorldSnapshot:
    """Everything a :class:`WorldModel` needs to continue exactly from here."""

    cache: CacheSnapshot
    rng: list[torch.Tensor]
    captions: list[str]
    caption_text: torch.Tensor  # (N, 1, text_dim) embedded scene captions, the memory writer's text
    last_frame: torch.Tensor | None = None  # (N, 3, H, W) float in [-1, 1]: the last frame shown (reproject generators)
    last_pose: torch.Tensor | None = None  # (N, 3) its pose


def resolve_carry(carry: str | None, reproject: bool) -> str | None:
    """The carry mode of a world (:data:`CARRY_MODES`): ``None`` picks ``sharp`` for a generator trained with the
    geometric input (``reproject``) and nothing for one without it, which takes no mode."""
    if carry is None:
        return "sharp" if reproject else None
    if carry not in CARRY_MODES:
        raise ValueError(f"unknown carry mode {carry!r}; choose one of {', '.join(CARRY_MODES)} (or None: the default)")
    if not reproject:
        raise ValueError(f"carry={carry!r} uses the last frame reprojected to the new poses, but this generator was "
                         f"trained without it (reproject=False); leave carry unset")
    return carry


class CarriedBlock(NamedTuple):
    """A sampled block: the latents memory takes (N, F, C, h, w), and the frames shown when they are not those latents
    decoded (``carry="sharp"``: float (N, F, 3, H, W) in [-1, 1]; None otherwise)."""

    latents: torch.Tensor
    shown: torch.Tensor | None = None

    def shown_frames(self) -> np.ndarray | None:
        """The frames as shown, uint8 (N, F, H, W, 3), when they are not the latents decoded; None otherwise."""
        if self.shown is None:
            return None
        return rearrange(Autoencoder.to_uint8(self.shown), "n f c h w -> n f h w c").contiguous().cpu().numpy()


def given_last_frame(frames: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """The last frame of given blocks, uint8 (N, F, H, W, 3), as a world shows it: float (N, 3, H, W) in [-1, 1]."""
    last = torch.from_numpy(np.ascontiguousarray(frames[:, -1])).to(device)
    return Autoencoder.to_unit(rearrange(last, "n h w c -> n c h w"))


def _cloned(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.clone()


class LatentWorld:
    """What every latent world model shares: N worlds with their own random streams, prompts embedded once, frames
    encoded and decoded by the autoencoder. :class:`WorldModel` (generator + compressed cache) and
    :class:`~magworld.model.teacher_world.TeacherWorld` (the DMD teacher sampling over a window) build on it."""

    def __init__(self, cfg: TransformerConfig, autoencoder: Autoencoder, text_encoder=None, *,
                 device: str | torch.device = "auto", seed: int = 0, name: str = "world") -> None:
        self.cfg = cfg
        self.device = resolve_device(device)
        self.seed, self.name = seed, name
        # channels-last convolution weights: encode/decode ~25 % faster on CPU (oneDNN); equal up to float rounding
        self.autoencoder = autoencoder.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.text_encoder = text_encoder if text_encoder is not None else make_text_encoder(TextConfig())
        self._text: dict[str, torch.Tensor] = {}  # prompt -> (1, text_dim) on device
        self._rng: list[torch.Generator] = []
        self._captions: list[str] = []

    def _seed_worlds(self, captions: Sequence[str], seeds: Sequence[int] | None) -> None:
        """One random stream per world: ``seeds[i]``, default ``seed + i``."""
        n = len(captions)
        seeds = [self.seed + i for i in range(n)] if seeds is None else list(seeds)
        if len(seeds) != n:
            raise ValueError(f"{n} captions but {len(seeds)} seeds")
        self._rng = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self._captions = list(captions)

    # --- helpers --------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """Prompts -> (N, 1, text_dim) on the device, each prompt encoded once per WorldModel."""
        if len(prompts) != self.worlds:
            raise ValueError(f"expected {self.worlds} prompts, got {len(prompts)}")
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text]
        if missing:
            for p, e in zip(missing, self.text_encoder.encode(list(missing))):
                self._text[p] = e.to(self.device, torch.float32)
        return torch.stack([self._text[p] for p in prompts])

    def _poses(self, poses: BlockPoses) -> torch.Tensor:
        """float32 (N, F, 3) yaw/pitch/fov degrees (see :mod:`magworld.protocol`) -> a tensor on the device."""
        arr = block_poses_array(poses)
        if arr.shape[:2] != (self.worlds, self.cfg.block_frames):
            raise ValueError(f"expected poses for {self.worlds} worlds x {self.cfg.block_frames} frames, got "
                             f"{arr.shape[:2]}")
        return torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (N, F, H, W, 3) -> latents (N, F, C, h, w)."""
        size = self.cfg.latent_size * self.autoencoder.cfg.downsample
        want = (self.worlds, self.cfg.block_frames, size, size, 3)
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.shape != want:
            got = f"{getattr(frames, 'dtype', type(frames).__name__)} {getattr(frames, 'shape', '')}"
            raise ValueError(f"frames must be uint8 {want} (worlds, frames per block, H, W, RGB), got {got}")
        x = rearrange(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device), "n f h w c -> (n f) c h w")
        return rearrange(self.autoencoder.encode(x), "(n f) c h w -> n f c h w", n=self.worlds).float()

    def _decode(self, latents: torch.Tensor, last: torch.Tensor | None = None) -> np.ndarray:
        """(N, F, C, h, w) -> uint8 (N, F, H, W, 3). ``last``: the block's last frame already decoded (float (N, 3, H, W),
        what a reproject world keeps as its next geometric input), so it is not decoded twice."""
        head = latents if last is None else latents[:, :-1]  # frames to decode
        frames = rearrange(self.autoencoder.decode(rearrange(head, "n f c h w -> (n f) c h w")),
                           "(n f) c h w -> n f h w c", n=latents.shape[0])  # uint8
        if last is not None:
            frames = torch.cat([frames, rearrange(self.autoencoder.to_uint8(last), "n c h w -> n 1 h w c")], 1)
        return frames.contiguous().cpu().numpy()

    def _require_started(self) -> None:
        if not self._rng:
            raise RuntimeError("call start(frames, poses, captions) before memorize/step")

    @property
    def worlds(self) -> int:
        return len(self._rng)

    def _write(self, latents: torch.Tensor, pose: torch.Tensor, last: torch.Tensor | None = None) -> None:
        """Take a shown block (latents (N, F, C, h, w), poses (N, F, 3)) into the world's memory. ``last``: the block's
        last frame as shown, float (N, 3, H, W) in [-1, 1], when it was given (:func:`given_last_frame`)."""
        raise NotImplementedError

    def memorize(self, frames: np.ndarray, poses: BlockPoses) -> None:
        """Write given (ground-truth) blocks into memory without generating."""
        self._require_started()
        with torch.inference_mode(), self._autocast():
            self._write(self._encode(frames), self._poses(poses), given_last_frame(frames, self.device))


class WorldModel(LatentWorld):
    """N MAG worlds stepping together (docs/notes/code.md); build with :meth:`from_bundled`."""

    def __init__(self, generator: Generator, memory_model: MemoryModel, autoencoder: Autoencoder, text_encoder=None,
                 *, memory: str = "mag", sampling_steps: int | None = None, device: str | torch.device = "auto",
                 seed: int = 0, name: str | None = None, carry: str | None = None, frozen: bool = True) -> None:
        """``sampling_steps``: denoising steps per block (None: the checkpoint's). ``frozen`` (default): the generator is
        put in eval mode without gradients on ``device``; ``frozen=False`` leaves it as the caller trains it (its mode,
        device and parameters untouched; :meth:`generate` may then take gradients)."""
        gcfg, mcfg = generator.cfg.transformer, memory_model.cfg.transformer
        if gcfg != mcfg:
            raise CheckpointError(f"generator and memory model shapes differ ({gcfg} vs {mcfg}); the generator reads "
                                  f"the memory model's key/values, so pair it with the memory model it was trained with")
        if generator.cfg.kept != memory_model.cfg.kept:
            raise CheckpointError(f"generator trained for kept={generator.cfg.kept}, memory model keeps "
                                  f"{memory_model.cfg.kept} frames per block")
        if autoencoder.cfg.latent_channels != gcfg.latent_channels:
            raise CheckpointError(f"autoencoder has {autoencoder.cfg.latent_channels} latent channels, the generator "
                                  f"{gcfg.latent_channels}")
        carry = resolve_carry(carry, generator.cfg.reproject)
        self.cache_config = generator.cfg.cache_config(memory)  # validates the policy name
        super().__init__(gcfg, autoencoder, text_encoder, device=device, seed=seed, name=name or memory)
        self.memory, self.carry, self.frozen = memory, carry, frozen
        self.generator = generator.to(self.device).eval().requires_grad_(False) if frozen else generator
        self.memory_model = memory_model.to(self.device).eval().requires_grad_(False)
        flow = generator.cfg.flow if sampling_steps is None else replace(generator.cfg.flow, steps=int(sampling_steps))
        self.sampler = BlockSampler(flow)
        self.cache = generator.new_cache(memory)
        self._caption_text: torch.Tensor | None = None
        self._last_frame: torch.Tensor | None = None  # (N, 3, H, W) float [-1, 1]: the last frame shown
        self._last_pose: torch.Tensor | None = None  # (N, 3) its pose

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, *, memory: str = "mag", memory_model: str | Path = "bundled",
                        autoencoder: str | Path = "bundled", check_hashes: bool = True, **kwargs) -> "WorldModel":
        """A world model from a generator checkpoint, or a weights folder laid out like the bundled one (as ``magworld
        weights bundle`` writes it); memory model and autoencoder default to the bundled ones (a folder's: its own).
        A memory model other than the one the generator was trained against (its recorded sha256) warns."""
        folder = Path(path) if Path(path).is_dir() else WEIGHTS_DIR
        path = folder / GENERATOR_FILE if Path(path).is_dir() else path
        mem_path = bundled_path("memory", folder) if memory_model == "bundled" else Path(memory_model)
        ae_path = bundled_path("autoencoder", folder) if autoencoder == "bundled" else Path(autoencoder)
        generator, mem, ae = load_generator(path), load_memory(mem_path), load_autoencoder(ae_path)
        wanted = read_meta(path)["extra"].get("memory_sha256")
        if check_hashes and wanted and sha256(mem_path) != wanted:
            warnings.warn(f"generator {path} was trained against a memory model with sha256 {wanted[:12]}..., but "
                          f"{mem_path} differs; retrain the generator (magworld train stage=generator) for this memory "
                          f"model", stacklevel=2)
        return cls(generator, mem, ae, memory=memory, **kwargs)

    @classmethod
    def from_bundled(cls, memory: str = "mag", sampling_steps: int | None = None,
                     device: str | torch.device = "auto", **kwargs) -> "WorldModel":
        """The world model shipped in ``magworld/assets/weights`` (no download)."""
        return cls.from_checkpoint(WEIGHTS_DIR, memory=memory, sampling_steps=sampling_steps, device=device, **kwargs)

    def _write(self, x0: torch.Tensor, pose: torch.Tensor, last: torch.Tensor | None = None) -> None:
        """Memory-model clean pass over a final block x0 (N, F, C, h, w). The block's last frame as shown (``last``:
        given or ``sharp``; else x0's last frame decoded) is kept with its pose as the next block's geometric input."""
        write_block(self.memory_model, x0, pose, self._caption_text, self.cache)
        if self.generator.cfg.reproject:
            shown = last if last is not None else self.autoencoder.decode_float(x0[:, -1])
            self._last_frame, self._last_pose = shown.float(), pose[:, -1].float()

    # --- BlockWorld -----------------------------------------------------------------------------
    def start(self, frames: np.ndarray, poses: BlockPoses, captions: Sequence[str],
              seeds: Sequence[int] | None = None) -> None:
        """Begin N worlds from ground-truth first blocks; world i's noise comes from ``seeds[i]``
        (default ``seed + i``)."""
        self._seed_worlds(captions, seeds)
        self.cache.reset()
        with torch.inference_mode(), self._autocast():
            self._caption_text = self.embed(self._captions)
            self._write(self._encode(frames), self._poses(poses), given_last_frame(frames, self.device))

    def _no_grad(self):
        """Inference mode for a frozen world; plain no-grad for a trained one (its tensors may later meet autograd)."""
        return torch.inference_mode() if self.frozen else torch.no_grad()

    def step(self, poses: BlockPoses, prompts: Sequence[str]) -> np.ndarray:
        return self.show(self.generate(poses, prompts))

    def show(self, block: CarriedBlock) -> np.ndarray:
        """The frames a generated block shows, uint8 (N, F, H, W, 3)."""
        shown = block.shown_frames()
        if shown is not None:
            return shown
        with self._no_grad():
            return self._decode(block.latents.detach(), self._last_frame if self.generator.cfg.reproject else None)

    def generate(self, poses: BlockPoses, prompts: Sequence[str], *, exit_step: int | None = None,
                 grad: bool = False) -> CarriedBlock:
        """Sample the next block of every world reading the cache, carry what the last shown frame saw, write the block
        to memory and return it. ``exit_step``/``grad`` (training, ``frozen=False`` only): stop at that sampler step and
        keep its graph in the returned latents; memory always takes the block detached."""
        self._require_started()
        if grad and self.frozen:
            raise ValueError("grad=True needs a world built with frozen=False (a frozen generator has no gradients)")
        with self._no_grad(), self._autocast():
            pose, text = self._poses(poses), self.embed(prompts)
            warp = cond = None
            if self.generator.cfg.reproject:  # the last frame shown, reprojected to this block's poses (once)
                warp = warp_block(self._last_frame, self._last_pose, pose)
                cond = carry_condition(self.autoencoder, warp)
            with torch.set_grad_enabled(grad):
                block = self._sample(pose, text, cond, warp, exit_step)
            self._write(block.latents.detach(), pose, None if block.shown is None else block.shown[:, -1])
        return block

    def _sample(self, pose: torch.Tensor, text: torch.Tensor, cond: torch.Tensor | None, warp, exit_step: int | None
                ) -> CarriedBlock:
        """The block right after the cache's frames: a ``sharp`` world keeps the cells the last frame covers whole while
        it samples and puts back every pixel it saw (the composite is what it shows, never trained through)."""
        shape = (self.worlds, self.cfg.block_frames, self.cfg.latent_channels, self.cfg.latent_size,
                 self.cfg.latent_size)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.generator(x, t, pose, text, self.cache, cond=cond).prediction

        # sharp: keep the latent cells the last shown frame covers whole (its reprojected latents; mask (N, T, 1, h, w))
        known = Known(cond[:, :, :-1], cond[:, :, -1:] >= 1.0) if self.carry == "sharp" else None
        x0 = self.sampler.sample(velocity, shape, self._rng, self.device, exit_step=exit_step, known=known)
        if self.carry != "sharp":
            return CarriedBlock(x0)
        latents, composite = keep_seen_pixels(self.autoencoder, x0, warp)
        return CarriedBlock(latents, composite.detach())

    def cache_bytes(self) -> int:
        return self.cache.bytes()

    def cache_frames(self) -> int:
        """Frames whose key/values the next block attends to (the most of any world; all worlds share the count but
        under ``mag-recall``)."""
        return self.cache.frames()

    def stored_bytes(self) -> int:
        """Bytes of keys/values held, all worlds (``cache_bytes`` but for ``mag-recall``, whose store holds more)."""
        return self.cache.stored_bytes()

    def stored_frames(self) -> int:
        """Frames held (the most of any world)."""
        return self.cache.stored_frames()

    # --- branching ------------------------------------------------------------------------------
    def snapshot(self) -> WorldSnapshot:
        self._require_started()
        return WorldSnapshot(self.cache.snapshot(), [g.get_state() for g in self._rng], list(self._captions),
                             self._caption_text.clone(), _cloned(self._last_frame), _cloned(self._last_pose))

    def restore(self, snap: WorldSnapshot) -> None:
        self.cache.restore(snap.cache)
        self._rng = [torch.Generator().set_state(s.clone()) for s in snap.rng]
        self._captions, self._caption_text = list(snap.captions), snap.caption_text.clone()
        self._last_frame, self._last_pose = _cloned(snap.last_frame), _cloned(snap.last_pose)
