"""Decoder likelihoods: the Gaussian NLL, the "auto" choice, input domains, training and scoring of Gaussian VAEs,
their save/load round trip, and scikit-learn pipelines that hand the estimators values outside [0, 1]."""

import math
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from typer.testing import CliRunner

from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.cli import app
from regentree.errors import ConfigError, InvalidInputError, ModelFolderError
from regentree.persistence.weights_check import check_header_against_config
from regentree.scoring.distances import DISTANCES
from regentree.scoring.kernels import MLPKernel, ModuleKernel
from regentree.scoring.regeneration import noise_bank
from regentree.training.loop import TrainingConfig, TrainingTask, initial_vae
from regentree.training.stacked import train_vaes_stacked
from regentree.training.steps import MLPTrainingStep
from regentree.vae.likelihood import LOG_VARIANCE_RANGE, fit_standardization, gaussian_negative_log_likelihood
from regentree.vae.model import VAE, VAEConfig

from conftest import TINY

GAUSSIAN = VAEConfig(input_dim=6, hidden_dims=(8,), latent_dim=2, likelihood="gaussian")


def _gaussian_vae(seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    vae = VAE(GAUSSIAN)
    vae.set_standardization(torch.linspace(-1, 1, 6), torch.linspace(0.5, 2, 6))
    with torch.no_grad():
        vae.decoder_log_variance.copy_(torch.linspace(-1, 1, 6))
    return vae.eval()


def _well_above_chance(accuracy: float, n_classes: int) -> bool:
    """Accuracy at least halfway from chance (1 / n_classes) to perfect."""
    chance = 1.0 / n_classes
    return accuracy >= chance + (1.0 - chance) / 2


# ----------------------------------------------------------------------------- the likelihood terms
def test_gaussian_nll_is_the_hand_computed_value():
    mean, x, log_variance = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 3.0]]), torch.tensor([0.0, math.log(4.0)])
    # feature 1: 0.5 * (1 + 0 + log 2pi); feature 2: 0.5 * (2^2 / 4 + log 4 + log 2pi)
    expected = 0.5 * (1.0 + math.log(2 * math.pi)) + 0.5 * (1.0 + math.log(4.0) + math.log(2 * math.pi))
    assert gaussian_negative_log_likelihood(mean, x, log_variance).item() == pytest.approx(expected, rel=1e-6)


def test_standardization_is_mean_and_std_with_constant_features_only_centred():
    X = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 0.0]])
    shift, scale = fit_standardization(X)
    np.testing.assert_allclose(shift, X.mean(axis=0))
    np.testing.assert_allclose(scale, [X[:, 0].std(), 1.0, X[:, 2].std()], rtol=1e-6)


def test_config_leaves_the_default_likelihood_out_and_reads_older_configs_as_bernoulli():
    bernoulli = VAEConfig(input_dim=6)
    assert "likelihood" not in bernoulli.to_dict()
    assert VAEConfig.from_dict(bernoulli.to_dict()).likelihood == "bernoulli"
    assert VAEConfig.from_dict(GAUSSIAN.to_dict()) == GAUSSIAN
    with pytest.raises(ConfigError, match="likelihood"):
        VAEConfig(input_dim=6, likelihood="poisson")


def test_only_gaussian_vaes_hold_a_standardization_and_a_variance():
    assert set(VAE(GAUSSIAN).state_dict()) - set(VAE(VAEConfig(input_dim=6, hidden_dims=(8,), latent_dim=2)).state_dict()) \
        == {"input_shift", "input_scale", "decoder_log_variance"}
    with pytest.raises(ConfigError, match="no input standardisation"):
        VAE(VAEConfig(input_dim=6)).set_standardization(torch.zeros(6), torch.ones(6))


def test_the_learned_log_variance_is_clamped():
    vae = _gaussian_vae()
    with torch.no_grad():
        vae.decoder_log_variance.fill_(LOG_VARIANCE_RANGE[0] - 10)
    assert torch.all(vae.decoder_likelihood().log_variance == LOG_VARIANCE_RANGE[0])


# ----------------------------------------------------------------------------- training and scoring
def test_mlp_step_gradients_on_a_gaussian_vae_equal_autograds():
    reference, manual = _gaussian_vae(), _gaussian_vae()
    batch = torch.randn(20, 6) * 2
    torch.manual_seed(7)
    loss = reference(batch).loss
    loss.backward()
    step = MLPTrainingStep(manual, learning_rate=1e-3, precision="float32")
    torch.manual_seed(7)
    assert step(batch).item() == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(manual.decoder_log_variance.grad, reference.decoder_log_variance.grad,
                               rtol=1e-4, atol=1e-6)
    linears = [m for m in [*reference.encoder, *reference.decoder] if isinstance(m, torch.nn.Linear)]
    expected = torch.cat([t.grad.reshape(-1) for m in linears for t in (m.weight, m.bias)])
    torch.testing.assert_close(step.flat.grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(DISTANCES))
def test_both_kernels_score_gaussian_vaes_as_the_vae_itself_does(name):
    vaes = [_gaussian_vae(0), _gaussian_vae(1)]
    x, eps = torch.randn(5, 6) * 3, noise_bank(4, 2, seed=0)
    distance = DISTANCES[name]
    fused = MLPKernel(vaes, torch.device("cpu"), rows=8).distances(x, eps, 1.0, distance)
    generic = ModuleKernel(vaes, torch.device("cpu"), rows=8).distances(x, eps, 1.0, distance)
    torch.testing.assert_close(fused, generic, rtol=1e-5, atol=1e-4)
    if not distance.latent_corrected:
        with torch.no_grad():
            direct = distance(vaes[0].regenerate(x, eps.expand(5, -1, -1)), vaes[0].standardize(x)[:, None, :],
                              vaes[0].decoder_likelihood())
        torch.testing.assert_close(fused[:, 0], direct, rtol=1e-5, atol=1e-4)


def test_a_task_starts_from_its_standardization_and_its_datas_variance():
    X = (np.random.default_rng(0).normal(size=(40, 6)) * [1, 2, 3, 4, 5, 6] + 10).astype(np.float32)
    shift, scale = fit_standardization(X)
    task = TrainingTask("a", GAUSSIAN, TrainingConfig(epochs=2, patience=0), X, seed=0,
                        standardization=(shift, scale * 2))
    vae = initial_vae(task)
    torch.testing.assert_close(vae.input_scale, torch.from_numpy(scale * 2))
    # the data's variance in units of twice its std is a quarter
    torch.testing.assert_close(vae.decoder_log_variance.data, torch.full((6,), math.log(0.25)), rtol=0, atol=1e-4)


def test_stacked_training_keeps_each_gaussian_vaes_standardization():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(60, 6)) * 5 + 3).astype(np.float32)
    shift, scale = fit_standardization(X)
    config = TrainingConfig(epochs=2, batch_size=16, patience=0)
    tasks = [TrainingTask(k, GAUSSIAN, config, X[i::2], seed=i, standardization=(shift, scale))
             for i, k in enumerate("ab")]
    for result in train_vaes_stacked(tasks):
        vae = VAE(GAUSSIAN)
        vae.load_state_dict(result.state_dict)
        np.testing.assert_array_equal(vae.input_shift.numpy(), shift)
        assert torch.isfinite(vae.decoder_log_variance).all()


# ----------------------------------------------------------------------------- the estimators
def test_auto_picks_bernoulli_for_pixels_and_gaussian_for_other_values(digits_train):
    X, y = digits_train.X[:80], digits_train.y[:80] % 2
    tiny = dict(TINY, epochs=1, rejection_target=None)
    assert FlatRegenClassifier(**tiny).fit(X, y).likelihood_ == "bernoulli"
    assert FlatRegenClassifier(**tiny).fit((X * 255).astype(np.uint8), y).likelihood_ == "bernoulli"
    assert FlatRegenClassifier(**tiny).fit(X * 16, y).likelihood_ == "gaussian"
    assert FlatRegenClassifier(**tiny, likelihood="gaussian").fit(X, y).likelihood_ == "gaussian"
    model = FlatRegenClassifier(**tiny).fit(X - 0.5, y)
    assert model.summary()["vae"]["likelihood"] == "gaussian"


def test_bernoulli_clips_float_probes_refuses_bad_pixels_and_gaussian_takes_any_finite_value(digits_train):
    X, y = digits_train.X[:80], digits_train.y[:80] % 2
    tiny = dict(TINY, epochs=1, rejection_target=None)
    bernoulli = FlatRegenClassifier(**tiny).fit(X, y)
    gaussian = FlatRegenClassifier(**tiny, likelihood="gaussian").fit(X, y)
    with pytest.warns(UserWarning, match=r"outside the Bernoulli decoder's \[0, 1\]; clipped"):
        clipped = bernoulli.predict_proba(X[:2] * 2 - 0.5)
    np.testing.assert_array_equal(clipped, bernoulli.predict_proba(np.clip(X[:2] * 2 - 0.5, 0, 1)))
    with pytest.raises(InvalidInputError, match="outside the allowed range") as caught:
        bernoulli.predict(np.full((1, X.shape[1]), 300))  # integer pixels beyond 0..255 are no pixels
    assert "\n" not in str(caught.value)
    assert np.isfinite(gaussian.predict_proba(X[:2] * 100 - 50)).all()
    with pytest.raises(InvalidInputError, match="outside the allowed range"):
        FlatRegenClassifier(**tiny, likelihood="bernoulli").fit(X * 2, y)
    for model in (bernoulli, gaussian):
        for bad in (np.nan, np.inf):
            probes = X[:2].copy()
            probes[0, 3] = bad
            with pytest.raises(InvalidInputError, match="NaN/inf"):
                model.predict(probes)


@pytest.mark.parametrize("load, training", [(load_digits, dict(epochs=15, batch_size=32)),
                                            (load_iris, dict(epochs=60, batch_size=16))], ids=["digits", "iris"])
def test_gaussian_models_classify_raw_digits_and_iris_well_above_chance(load, training):
    X, y = load(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = FlatRegenClassifier(hidden_dims=(32,), latent_dim=2, n_regenerations=20, base_epochs=0,
                                rejection_target=None, **training).fit(X_train, y_train)
    assert model.likelihood_ == "gaussian"
    assert _well_above_chance(float(np.mean(model.predict(X_test) == y_test)), len(np.unique(y)))


@pytest.mark.parametrize("estimator", [FlatRegenClassifier, TreeRegenClassifier])
def test_a_saved_gaussian_model_loads_with_identical_predictions(estimator, tmp_path):
    X, y = load_iris(return_X_y=True)
    model = estimator(hidden_dims=(8,), latent_dim=2, epochs=5, batch_size=16, n_regenerations=10,
                      base_epochs=2).fit(X, y)
    folder = model.save(tmp_path / "model")
    loaded = estimator.load(folder)
    assert loaded.likelihood_ == "gaussian"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    key = next(iter(model.vaes_))
    stored = load_file(str(folder / "vaes" / f"{key}.safetensors"))
    np.testing.assert_array_equal(stored["input_shift"].numpy(), model.vaes_[key].input_shift.numpy())
    shown = CliRunner().invoke(app, ["info", str(folder)])
    assert shown.exit_code == 0 and "gaussian decoder" in shown.output


def test_a_conv_vae_takes_the_gaussian_decoder_too():
    X, y = load_digits(return_X_y=True)
    model = FlatRegenClassifier(architecture="conv", hidden_dims=(2, 4, 8), latent_dim=2, epochs=2,
                                n_regenerations=4, base_epochs=0, rejection_target=None).fit(X[:100], y[:100])
    assert model.likelihood_ == "gaussian" and np.isfinite(model.predict_proba(X[100:110])).all()


def test_the_header_check_knows_a_gaussian_vaes_tensors(tmp_path, digits_train):
    model = FlatRegenClassifier(**dict(TINY, epochs=1, rejection_target=None)).fit(digits_train.X[:80],
                                                                                 digits_train.y[:80] % 2)
    folder = model.save(tmp_path / "model")
    file = folder / "vaes" / f"{model.vae_keys_[0]}.safetensors"
    gaussian = VAEConfig(**{**model.vaes_[model.vae_keys_[0]].config.to_dict(), "likelihood": "gaussian"})
    with pytest.raises(ModelFolderError, match="do not match the VAE config"):
        check_header_against_config(file, gaussian)


def test_an_ensemble_needs_members_of_one_likelihood(digits_train):
    from regentree import RegenEnsemble

    X, y = digits_train.X[:80], digits_train.y[:80] % 2
    tiny = dict(TINY, epochs=1, rejection_target=None)
    members = [FlatRegenClassifier(**tiny).fit(X, y), FlatRegenClassifier(**tiny, likelihood="gaussian").fit(X, y)]
    with pytest.raises(ConfigError, match="gaussian decoder"):
        RegenEnsemble.from_fitted(members)
    ensemble = RegenEnsemble.from_fitted([members[1], FlatRegenClassifier(**tiny, random_state=1).fit(X * 4, y)])
    assert ensemble.likelihood_ == "gaussian" and len(ensemble.predict(X[:3] * 4)) == 3


@pytest.mark.parametrize("likelihood", ["auto", "gaussian"])
def test_cross_validation_through_a_min_max_scaler_scores_every_fold(likelihood):
    """The issue's pattern: the scaler maps test folds outside [0, 1]. "auto" picks bernoulli on the training
    folds' [0, 1] values and clips the probes (with a warning); a Gaussian model takes them as they are."""
    X, y = load_digits(return_X_y=True)
    tiny = FlatRegenClassifier(hidden_dims=(16,), latent_dim=2, epochs=3, n_regenerations=5, likelihood=likelihood)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scores = cross_val_score(make_pipeline(MinMaxScaler(), tiny), X[:450], y[:450], cv=3, error_score="raise")
    assert np.isfinite(scores).all() and scores.min() > 1 / len(np.unique(y[:450]))


def test_the_tree_compares_class_means_of_standardised_features_and_adds_a_gaussian_class():
    X, y = load_iris(return_X_y=True)
    X = X * [1000, 1, 1, 1]  # one feature in other units
    tiny = dict(hidden_dims=(8,), latent_dim=2, epochs=3, batch_size=16, n_regenerations=10, rejection_target=None)
    model = TreeRegenClassifier(**tiny).fit(X[y < 2], y[y < 2])
    seen = model._standardized(X[y < 2].astype(np.float32))
    np.testing.assert_allclose(seen.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(seen.std(axis=0), 1, rtol=1e-4)
    pixels = FlatRegenClassifier(**tiny).fit(X[y < 2] / X.max(), y[y < 2])
    np.testing.assert_array_equal(pixels._standardized(X[:3] / X.max()), X[:3] / X.max())
    model.add_class(X[y == 2], 2)
    assert model.classes_.tolist() == [0, 1, 2] and set(model.predict(X)) <= {0, 1, 2}
