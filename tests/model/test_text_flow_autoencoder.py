import torch

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.flow import add_noise, velocity_target, x0_from_velocity
from magworld.model.text import HashingTextEncoder, TextConfig, make_text_encoder


def test_hashing_encoder_deterministic_normalised_and_empty_is_zero():
    enc = HashingTextEncoder()
    a = enc.encode(["a city street at dusk", "", "  "])
    b = enc.encode(["a city street at dusk"])
    assert a.shape == (3, 1, 384) and torch.equal(a[:1], b)
    assert torch.allclose(a[0].norm(), torch.tensor(1.0))
    assert torch.equal(a[1:], torch.zeros(2, 1, 384))


def test_disk_cache_round_trip(tmp_path):
    enc = make_text_encoder(TextConfig(encoder="hashing", cache_dir=str(tmp_path)))
    first = enc.encode(["the camera pans left", "the camera pans left", ""])
    files = list((tmp_path / enc.name).glob("*.safetensors"))
    assert len(files) == 2
    again = make_text_encoder(TextConfig(encoder="hashing", cache_dir=str(tmp_path)))
    again.inner.encode = None  # must be served from disk
    assert torch.equal(again.encode(["the camera pans left", ""]), first[1:])


def test_minilm_matches_sentence_similarity_and_loads_quietly(tmp_path, capfd):
    enc = make_text_encoder(TextConfig(encoder="minilm", cache_dir=str(tmp_path)))
    e = enc.encode(["the camera pans left", "the camera turns to the left", "a green mountain valley", ""])
    assert "Loading weights" not in capfd.readouterr().err  # no progress bar when an encoder loads
    sim = (e[:, 0] @ e[:, 0].T)
    assert sim[0, 1] > sim[0, 2] and torch.allclose(e[0].norm(), torch.tensor(1.0)) and e[3].abs().sum() == 0


def test_x0_from_velocity_inverts_add_noise():
    x0, noise, t = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.rand(2, 3)
    assert torch.allclose(x0_from_velocity(add_noise(x0, noise, t), velocity_target(x0, noise), t), x0, atol=1e-6)


def test_autoencoder_shapes_and_uint8_round_trip_types():
    ae = Autoencoder(AutoencoderConfig(channels=[8, 16, 16], latent_channels=4, groups=4))
    frames = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    z = ae.encode(frames)
    assert z.shape == (2, 4, 8, 8)
    out = ae.decode(z)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    ae.fit_latent_stats(frames)
    assert ae.encode(frames).mean(dim=(0, 2, 3)).abs().max() < 1e-4
