"""The weights shipped in the package load offline and produce sane outputs."""

import torch

from magworld.model import load_bundled
from magworld.model.pretrained import bundled_path
from magworld.train.data import WorldDataConfig, heldout_frames
from magworld.train.metrics import psnr


def test_bundled_autoencoder_reconstructs_heldout_frames():
    ae = load_bundled("autoencoder")
    assert not ae.training and bundled_path("autoencoder").stat().st_size < 20e6
    frames = heldout_frames(WorldDataConfig(styles=["outdoor"]), per_style=4)["outdoor"]
    with torch.no_grad():
        z = ae.encode(frames)
        out = ae.decode(z)
    side = frames.shape[-1] // ae.cfg.downsample
    assert z.shape == (4, ae.cfg.latent_channels, side, side)
    assert 0.3 < float(z.std()) < 3.0  # standardised latents
    assert float(psnr(out, frames).mean()) > 25.0


def test_bundled_memory_model_matches_autoencoder():
    ae, memory = load_bundled("autoencoder"), load_bundled("memory")
    assert memory.cfg.transformer.latent_channels == ae.cfg.latent_channels
    assert memory.cfg.compression == 3.0 and not memory.training
