"""Re-generation scoring: shapes, determinism, chunking independence, distances vs a plain reference."""

import numpy as np
import pytest
import torch

from regentree.errors import ConfigError, InvalidInputError
from regentree.scoring.regeneration import level_distances, noise_bank, regenerate_distances
from regentree.scoring.statistics import summarize
from regentree.vae.model import VAE, VAEConfig, bernoulli_cross_entropy


@pytest.fixture(scope="module")
def vaes():
    torch.manual_seed(0)
    return [VAE(VAEConfig(input_dim=64, hidden_dims=(16,), latent_dim=3)).eval() for _ in range(3)]


def test_shape_and_agreement_with_a_per_vae_loop(vaes):
    X = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    d = regenerate_distances(vaes, X, n_regenerations=11, seed=4)
    assert d.shape == (5, 3, 11) and d.dtype == np.float32
    eps = noise_bank(11, 3, seed=4)
    with torch.no_grad():
        for v, vae in enumerate(vaes):
            x = torch.from_numpy(X)
            expected = bernoulli_cross_entropy(vae.regenerate(x, eps), x.unsqueeze(1)).numpy()
            np.testing.assert_allclose(d[:, v], expected, rtol=1e-5, atol=1e-4)


def test_results_do_not_depend_on_chunking_or_batch_companions(vaes):
    X = np.random.default_rng(1).random((9, 64), dtype=np.float32)
    whole = regenerate_distances(vaes, X, n_regenerations=8)
    tiny_chunks = regenerate_distances(vaes, X, n_regenerations=8, memory_budget_mb=1e-6)
    alone = regenerate_distances(vaes, X[4:5], n_regenerations=8)
    np.testing.assert_allclose(whole, tiny_chunks, rtol=1e-6)
    np.testing.assert_allclose(whole[4:5], alone, rtol=1e-5)


def test_noise_variance_spreads_the_distances(vaes):
    X = np.random.default_rng(2).random((4, 64), dtype=np.float32)
    calm = regenerate_distances(vaes, X, n_regenerations=50, noise_variance=0.0)
    noisy = regenerate_distances(vaes, X, n_regenerations=50, noise_variance=1.0)
    assert np.allclose(calm.std(axis=-1), 0, atol=1e-4)
    assert (noisy.std(axis=-1) > 1e-3).all()


def test_mse_distance_and_statistics(vaes):
    X = np.random.default_rng(3).random((2, 64), dtype=np.float32)
    d = regenerate_distances(vaes, X, n_regenerations=5, distance="mse")
    assert ((d >= 0) & (d <= 1)).all()
    np.testing.assert_allclose(summarize(d, "median"), np.median(d, axis=-1))


def test_errors(vaes):
    X = np.random.default_rng(0).random((2, 64), dtype=np.float32)
    with pytest.raises(ConfigError, match="distance"):
        regenerate_distances(vaes, X, distance="l1")
    with pytest.raises(InvalidInputError, match="expected"):
        regenerate_distances(vaes, X[:, :10])
    with pytest.raises(ConfigError, match="at least 2"):
        regenerate_distances(vaes, X, n_regenerations=1)


def test_mean_regenerations_are_the_decoded_posterior_means(vaes):
    from regentree.scoring.regeneration import mean_regenerations

    X = np.random.default_rng(1).random((4, 64), dtype=np.float32)
    images = mean_regenerations(vaes, X)
    assert images.shape == (4, 3, 64)
    with torch.no_grad():
        mu, _ = vaes[1].encode(torch.from_numpy(X))
        np.testing.assert_allclose(images[:, 1], torch.sigmoid(vaes[1].decode(mu)).numpy(), rtol=1e-5, atol=1e-6)


def _gaussian_vaes() -> list[VAE]:
    """Gaussian-decoder VAEs that differ in their standardisation and decoder variance, not only their weights."""
    out = []
    for seed in range(3):
        torch.manual_seed(seed)
        vae = VAE(VAEConfig(input_dim=64, hidden_dims=(16,), latent_dim=3, likelihood="gaussian"))
        vae.set_standardization(torch.full((64,), 0.1 * seed), torch.full((64,), 1.0 + seed))
        with torch.no_grad():
            vae.decoder_log_variance.fill_(-seed)
        out.append(vae.eval())
    return out


@pytest.mark.parametrize("make", ["bernoulli", "gaussian", "conv"])
def test_level_distances_equal_one_call_per_request(vaes, make):
    if make == "gaussian":
        vaes = _gaussian_vaes()
    elif make == "conv":
        torch.manual_seed(0)
        vaes = [VAE(VAEConfig(input_dim=64, hidden_dims=(2, 4, 8), latent_dim=3, architecture="conv")).eval()
                for _ in range(3)]
    X = np.random.default_rng(2).random((7, 64), dtype=np.float32)
    requests = [([2, 0], np.array([1, 4, 6])), ([1], np.array([0, 2, 3, 5])), ([0, 1, 2], np.array([3]))]
    kw = dict(n_regenerations=6, seed=3, memory_budget_mb=1e-4)  # several chunks per request
    got = level_distances(vaes, X, requests, **kw)
    for (positions, idx), d in zip(requests, got, strict=True):
        np.testing.assert_array_equal(d, regenerate_distances([vaes[i] for i in positions], X[idx], **kw))
