"""Fast paths against plain references: the MLP scoring kernel, stacked training, adaptive re-generation."""

import numpy as np
import pytest
import torch

import regentree.scoring.regeneration as scoring
from regentree.scoring.statistics import STATISTICS, summarize
from regentree import FlatRegenClassifier
from regentree.scoring.adaptive import adaptive_distances, round_schedule, settled
from regentree.training.stacked import _Stack, train_vaes_stacked
from regentree.errors import ConfigError
from regentree.scoring.kernels import MLPKernel, ModuleKernel
from regentree.rejection.kl import first_second_kl
from regentree.scoring.regeneration import DISTANCES, VAEStack, noise_bank, regenerate_distances
from regentree.training.loop import TrainingConfig, TrainingTask, build_vae, train_vae
from regentree.vae.model import VAE, VAEConfig

from conftest import TINY


@pytest.fixture(scope="module")
def vaes():
    torch.manual_seed(0)
    return [VAE(VAEConfig(input_dim=64, hidden_dims=(24, 16), latent_dim=3)).eval() for _ in range(3)]


def reference_distances(vaes, X, k, noise_variance, distance, seed):
    """The plain definition: a loop over VAEs and probes, one re-generation batch each."""
    eps = noise_bank(k, vaes[0].config.latent_dim, seed)
    out = np.empty((len(X), len(vaes), k), dtype=np.float32)
    with torch.no_grad():
        for v, vae in enumerate(vaes):
            for i, row in enumerate(torch.from_numpy(X)):
                logits = vae.regenerate(row[None], eps, noise_variance**0.5)[0]
                out[i, v] = DISTANCES[distance](logits, row[None]).numpy()
    return out


@pytest.mark.parametrize("distance", ["cross_entropy", "mse"])
@pytest.mark.parametrize("block_rows", [512, 7])  # 7 < K: draws split across blocks
def test_mlp_kernel_matches_the_plain_reference(vaes, distance, block_rows):
    X = np.random.default_rng(0).random((6, 64), dtype=np.float32)
    got = regenerate_distances(VAEStack(vaes, block_rows=block_rows), X, n_regenerations=13, noise_variance=0.7, distance=distance, seed=3)
    expected = reference_distances(vaes, X, 13, 0.7, distance, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_generic_kernel_agrees_with_the_mlp_kernel(vaes):
    x = torch.from_numpy(np.random.default_rng(1).random((5, 64), dtype=np.float32))
    eps = noise_bank(9, 3, seed=1)
    fast = MLPKernel(vaes, torch.device("cpu"), rows=8).distances(x, eps, 1.0, DISTANCES["cross_entropy"])
    generic = ModuleKernel(vaes, torch.device("cpu"), rows=8).distances(x, eps, 1.0, DISTANCES["cross_entropy"])
    assert fast.shape == generic.shape == (5, 3, 9)
    torch.testing.assert_close(fast, generic, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("block_rows", [512, 5])  # 5 < K and < n_probes: probes encoded and draws decoded in blocks
def test_conv_vaes_score_through_the_generic_kernel_like_the_plain_reference(block_rows):
    torch.manual_seed(1)
    conv = [VAE(VAEConfig(input_dim=64, hidden_dims=(4, 8, 16), latent_dim=3, architecture="conv")).eval()
            for _ in range(2)]
    X = np.random.default_rng(2).random((7, 64), dtype=np.float32)
    got = regenerate_distances(VAEStack(conv, block_rows=block_rows), X, n_regenerations=9, noise_variance=0.8, distance="cross_entropy", seed=4)
    np.testing.assert_allclose(got, reference_distances(conv, X, 9, 0.8, "cross_entropy", 4), rtol=1e-4, atol=1e-3)


def importance_reference(vaes, X, k, noise_variance, seed):
    """-log [p(x | z) p(z) / q(z | x)] of each draw, from the densities written out."""
    eps = noise_bank(k, vaes[0].config.latent_dim, seed)
    normal = torch.distributions.Normal
    out = np.empty((len(X), len(vaes), k), dtype=np.float32)
    with torch.no_grad():
        for v, vae in enumerate(vaes):
            x = torch.from_numpy(X)
            mu, logvar = vae.encode(x)
            std = noise_variance**0.5 * torch.exp(0.5 * logvar)
            z = mu[:, None] + std[:, None] * eps[None]
            log_q = normal(mu[:, None], std[:, None]).log_prob(z).sum(-1)
            log_p = normal(0.0, 1.0).log_prob(z).sum(-1)
            log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                vae.decode(z), x[:, None].expand(-1, k, -1), reduction="none").sum(-1)
            out[:, v] = (-(log_px_z + log_p - log_q)).numpy()
    return out


@pytest.mark.parametrize("block_rows", [512, 7])
def test_neg_log_weight_is_the_negative_log_importance_weight(vaes, block_rows):
    X = np.random.default_rng(4).random((5, 64), dtype=np.float32)
    got = regenerate_distances(VAEStack(vaes, block_rows=block_rows), X, n_regenerations=11, noise_variance=0.6, distance="neg_log_weight", seed=2)
    np.testing.assert_allclose(got, importance_reference(vaes, X, 11, 0.6, 2), rtol=1e-4, atol=1e-3)
    x, eps = torch.from_numpy(X), noise_bank(11, 3, seed=2)
    generic = ModuleKernel(vaes, torch.device("cpu"), rows=8).distances(
        x, eps, 0.6**0.5, DISTANCES["neg_log_weight"])
    np.testing.assert_allclose(generic.numpy(), got, rtol=1e-4, atol=1e-3)


def test_mean_neg_log_weight_estimates_the_negative_elbo(vaes):
    """E_q[-log p(x|z) + log q(z|x) - log p(z)] = E_q[cross-entropy] + KL(q || p), the VAE's loss."""
    X = np.random.default_rng(5).random((4, 64), dtype=np.float32)
    nlw = regenerate_distances(vaes[:1], X, n_regenerations=4000, distance="neg_log_weight", seed=0)[:, 0]
    ce = regenerate_distances(vaes[:1], X, n_regenerations=4000, distance="cross_entropy", seed=0)[:, 0]
    with torch.no_grad():
        mu, logvar = vaes[0].encode(torch.from_numpy(X))
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).numpy()
    np.testing.assert_allclose(nlw.mean(-1), ce.mean(-1) + kl, rtol=0, atol=0.05)
    # the importance-weighted estimate is a tighter bound: never above the ELBO estimate
    assert np.all(STATISTICS["likelihood"](nlw) <= nlw.mean(-1) + 1e-6)


def test_likelihood_statistic_is_negative_log_mean_exp():
    d = np.array([[[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]])
    expected = -np.log(np.exp(-d).mean(-1))
    np.testing.assert_allclose(STATISTICS["likelihood"](d), expected)
    with_gaps = np.concatenate([d, np.full((1, 2, 2), np.nan)], axis=-1)
    np.testing.assert_allclose(summarize(with_gaps, "likelihood"), expected)
    assert np.isnan(summarize(np.full((1, 1, 3), np.nan), "likelihood")).all()


def test_device_auto_and_unknown_device(vaes):
    X = np.random.default_rng(2).random((2, 64), dtype=np.float32)
    assert regenerate_distances(vaes, X, n_regenerations=4, device="auto").shape == (2, 3, 4)
    with pytest.raises(ConfigError, match="device"):
        regenerate_distances(vaes, X, n_regenerations=4, device="tpu")


# --------------------------------------------------------------------------- stacked training
def test_stacked_loss_and_gradients_equal_those_of_each_vae():
    config = VAEConfig(input_dim=64, hidden_dims=(16,), latent_dim=2)
    torch.manual_seed(0)
    models = [VAE(config) for _ in range(2)]
    stack = _Stack(models, 1e-3, torch.device("cpu"))
    x = torch.rand(2, 5, 64)
    noise = torch.randn(2, 5, 2)
    losses = stack.loss(x, noise)
    losses.sum().backward()
    for m, vae in enumerate(models):
        mu, logvar = vae.encode(x[m])
        logits = vae.decode(vae.reparameterize(mu, logvar, noise[m]))
        recon = (torch.nn.functional.softplus(logits) - x[m] * logits).sum(-1).mean()
        loss = recon + (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()
        loss.backward()
        torch.testing.assert_close(losses[m], loss.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(stack.params[0].grad[m], vae.encoder[0].weight.grad.t(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stack.params[-1].grad[m, 0], vae.decoder[-1].bias.grad, rtol=1e-4, atol=1e-5)


def _tasks(digits_train, epochs=8, patience=0, classes=(0, 1, 2), learning_rate=1e-3):
    config = VAEConfig(input_dim=64, hidden_dims=(32,), latent_dim=4)
    training = TrainingConfig(epochs=epochs, batch_size=32, patience=patience, learning_rate=learning_rate)
    return [TrainingTask(f"class_{c}", config, training, digits_train.X[digits_train.y == c], 100 + c) for c in classes]


def test_stacked_training_is_reproducible_and_learns(digits_train):
    tasks = _tasks(digits_train)
    first, again = train_vaes_stacked(tasks), train_vaes_stacked(tasks)
    for a, b, task in zip(first, again, tasks):
        assert a.key == task.key and a.epochs_run == 8
        for name in a.state_dict:
            torch.testing.assert_close(a.state_dict[name], b.state_dict[name], rtol=0, atol=0)
        build_vae(task.vae_config, a.state_dict)  # loads: names and shapes are those of a VAE
        assert a.history[-1]["val_loss"] < a.history[0]["val_loss"] - 3
    sequential = train_vae(tasks[0])  # the single-task path on the same task: a comparable fit
    assert first[0].history[-1]["val_loss"] <= 1.1 * sequential.history[-1]["val_loss"]


def test_stacked_training_stops_each_vae_on_its_own(digits_train):
    results = train_vaes_stacked(_tasks(digits_train, epochs=200, patience=2, learning_rate=0.05))
    assert all(r.epochs_run < 200 and r.epochs_run - r.best_epoch == 2 for r in results)


# --------------------------------------------------------------------------- adaptive re-generation
def test_round_schedule():
    assert round_schedule(25, 300) == [25, 50, 100, 200, 300]
    assert round_schedule(30, 30) == [30]
    with pytest.raises(ConfigError, match="n_regenerations_min"):
        round_schedule(1, 300)


def test_stopping_rule_on_clear_and_close_cases():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(1, 1, 25))
    clear = np.concatenate([10 + noise, 60 + noise + 0.1 * rng.normal(size=(1, 1, 25))], axis=1)
    close = np.concatenate([10 + noise, 10.05 + rng.normal(size=(1, 1, 25))], axis=1)
    near_threshold = np.concatenate([10 + noise, 13 + rng.normal(size=(1, 1, 25))], axis=1)  # KL ~ 4.5
    done = settled(np.concatenate([clear, close, near_threshold]), kl_band=(1.0, 20.0))
    assert done.tolist() == [True, False, False]


def test_adaptive_scoring_stops_early_on_easy_probes_and_keeps_decisions(fitted_flat, digits_test):
    keep = np.isin(digits_test.y, [0, 1, 2, 3])
    X = digits_test.X[keep][:60]
    stack = scoring.VAEStack([fitted_flat.vaes_[k] for k in fitted_flat.vae_keys_])
    fixed = regenerate_distances(stack, X, n_regenerations=80, seed=0)
    kl = first_second_kl(fixed, np.argsort(fixed.mean(-1), axis=1))
    band = (0.5, 2.0)  # the tiny model's KLs are small: a low band leaves easy probes above it
    result = adaptive_distances(stack, X, n_regenerations=80, n_regenerations_min=10, kl_band=band, seed=0)
    assert (result.n_used[kl > 20] < 80).mean() >= 0.8
    assert (result.n_used[(kl > band[0]) & (kl < band[1])] == 80).all()
    for i, k in enumerate(result.n_used):  # the draws used are exactly the fixed-K ones: one bank
        np.testing.assert_allclose(result.distances[i, :, :k], fixed[i, :, :k], rtol=1e-5)
        assert np.isnan(result.distances[i, :, k:]).all()
    assert (fixed.mean(-1).argmin(1) == np.nanmean(result.distances, -1).argmin(1)).all()


def test_adaptive_estimator_matches_fixed_k(fitted_flat, digits_test):
    keep = np.isin(digits_test.y, [0, 1, 2, 3])
    X = digits_test.X[keep][:80]
    fixed = fitted_flat.predict_with_rejection(X)
    adaptive = FlatRegenClassifier(**TINY).set_params(**fitted_flat.get_params())
    adaptive.__dict__.update({k: v for k, v in fitted_flat.__dict__.items() if k.endswith("_")})
    adaptive.set_params(adaptive=True, n_regenerations_min=10)
    fast = adaptive.predict_with_rejection(X)
    assert (fast.labels == fixed.labels).mean() >= 0.97
    assert (fast.rejected == fixed.rejected).mean() >= 0.97
    assert np.isfinite(fast.distortion).all() and np.isfinite(fast.kl).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softplus_sum_matches_torch_softplus_over_the_whole_range(dtype):
    from regentree.scoring.kernels import _softplus_sum_

    logits = torch.tensor([[-300.0, -40.0, -17.0, -1.0, 0.0, 3.0, 79.0, 81.0, 500.0], [0.5] * 9]).to(dtype)
    expected = torch.nn.functional.softplus(logits.double()).sum(-1)
    got = _softplus_sum_(logits.to(torch.float32, copy=True), logits)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=1e-5)
