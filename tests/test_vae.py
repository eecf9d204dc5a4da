"""VAE build and forward: config validation, named outputs, shapes, losses."""

import pytest
import torch

from regentree.errors import ConfigError
from regentree.vae.model import ARCHITECTURES, VAE, VAEConfig, VAEOutput, bernoulli_cross_entropy


def test_paper_defaults():
    config = VAEConfig(input_dim=784)
    assert config.hidden_dims == (500, 500) and config.latent_dim == 15 and config.architecture == "mlp"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_dim=0), "input_dim"),
        (dict(input_dim=64, latent_dim=0), "latent_dim"),
        (dict(input_dim=64, hidden_dims=(0,)), "hidden_dims"),
        (dict(input_dim=64, architecture="transformer"), "architecture"),
        (dict(input_dim=60, hidden_dims=(4, 8, 16), architecture="conv"), "square images"),
        (dict(input_dim=36, hidden_dims=(4, 8, 16), architecture="conv"), "multiple of 4"),
        (dict(input_dim=64, hidden_dims=(4, 8), architecture="conv"), "channels 1, channels 2, dense"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VAEConfig(**kwargs)


def test_config_dict_round_trip_and_unknown_keys():
    config = VAEConfig(input_dim=64, hidden_dims=(32, 16), latent_dim=3)
    assert VAEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown keys"):
        VAEConfig.from_dict({**config.to_dict(), "dropout": 0.1})


def test_forward_returns_named_outputs_with_shapes():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(input_dim=64, hidden_dims=(32,), latent_dim=3))
    x = torch.rand(5, 64)
    out = vae(x)
    assert isinstance(out, VAEOutput)
    assert out.recon_logits.shape == (5, 64) and out.z.shape == (5, 3) and out.mu.shape == (5, 3)
    assert torch.isclose(out.loss, out.recon_loss + out.reg_loss)
    assert out.reg_loss.item() >= 0


def test_regenerate_draws_k_samples_per_probe_and_zero_noise_is_deterministic():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(input_dim=64, hidden_dims=(32,), latent_dim=3)).eval()
    x = torch.rand(4, 64)
    eps = torch.randn(7, 3)
    logits = vae.regenerate(x, eps, noise_scale=1.0)
    assert logits.shape == (4, 7, 64)
    assert not torch.allclose(logits[:, 0], logits[:, 1])
    still = vae.regenerate(x, eps, noise_scale=0.0)
    assert torch.allclose(still[:, 0], still[:, 6])


def test_cross_entropy_matches_torch_bce():
    logits, x = torch.randn(3, 10), torch.rand(3, 10)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    assert torch.allclose(bernoulli_cross_entropy(logits, x), expected, atol=1e-5)


def test_registry_holds_mlp_and_conv():
    assert {"mlp", "conv"} <= set(ARCHITECTURES)


def test_conv_vae_maps_flat_images_to_flat_logits_whatever_the_leading_axes():
    """The conv VAE takes and returns flat pixels like the MLP, so training and scoring need no change;
    re-generation decodes (probes, draws, latent) codes, which the convolutions see as one flat batch."""
    torch.manual_seed(0)
    vae = VAE(VAEConfig(input_dim=64, hidden_dims=(4, 8, 16), latent_dim=3, architecture="conv")).eval()
    assert isinstance(vae.encoder[0].module[0], torch.nn.Conv2d)
    x = torch.rand(5, 64)
    out = vae(x)
    assert out.recon_logits.shape == (5, 64) and out.mu.shape == (5, 3)
    eps = torch.randn(7, 3)
    logits = vae.regenerate(x, eps)
    assert logits.shape == (5, 7, 64)
    with torch.no_grad():  # probe 2, draw 4 re-generated on its own gives the same logits
        mu, logvar = vae.encode(x[2:3])
        alone = vae.decode(vae.reparameterize(mu, logvar, eps[4:5]))
    torch.testing.assert_close(logits[2, 4], alone[0], rtol=1e-5, atol=1e-5)
