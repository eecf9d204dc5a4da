"""FlatRegenClassifier: scikit-learn conventions, accuracy on real digits, rejection, bad input."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from regentree import FlatRegenClassifier
from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.training.loop import TrainingConfig

from conftest import TINY


@parametrize_with_checks([FlatRegenClassifier(hidden_dims=(8,), latent_dim=2, epochs=3, patience=0, n_regenerations=5)])
def test_sklearn_conventions(estimator, check):
    check(estimator)


def test_init_stores_params_unchanged_and_clone_is_unfitted(fitted_flat):
    params = fitted_flat.get_params()
    assert params["hidden_dims"] == TINY["hidden_dims"] and params["n_regenerations"] == 30
    fresh = clone(fitted_flat)
    assert not hasattr(fresh, "vaes_")


def test_fitted_attributes(fitted_flat):
    assert list(fitted_flat.classes_) == ["0", "1", "2", "3"]
    assert fitted_flat.n_features_in_ == 64 and fitted_flat.image_shape_ == (8, 8)
    assert fitted_flat.vae_keys_ == ["class_0", "class_1", "class_2", "class_3"]
    assert set(fitted_flat.vaes_) == set(fitted_flat.vae_keys_) == set(fitted_flat.reference_distortions_)
    assert all(len(r) > 0 for r in fitted_flat.reference_distortions_.values())


def test_classifies_held_out_digits(fitted_flat, digits_test):
    keep = np.isin(digits_test.y, [0, 1, 2, 3])
    X, y = digits_test.X[keep], digits_test.labels[keep]
    assert fitted_flat.score(X, y) >= 0.9


def test_predict_proba_is_a_distribution_that_agrees_with_predict(fitted_flat, digits_test):
    X = digits_test.X[:20]
    proba = fitted_flat.predict_proba(X)
    assert proba.shape == (20, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fitted_flat.classes_[proba.argmax(axis=1)], fitted_flat.predict(X))


def test_prediction_is_deterministic_and_distances_have_k_samples(fitted_flat, digits_test):
    X = digits_test.X[:10]
    np.testing.assert_array_equal(fitted_flat.predict(X), fitted_flat.predict(X))
    assert fitted_flat.class_distances(X).shape == (10, 4, 30)


def test_rejection_reports_doubtful_below_the_kl_threshold(fitted_flat, digits_test):
    X = digits_test.X[:40]
    strict = clone(fitted_flat).set_params(kl_threshold=1e9)
    strict.__dict__.update({k: v for k, v in fitted_flat.__dict__.items() if k.endswith("_")})
    everything = strict.predict_with_rejection(X)
    assert everything.rejected.all() and set(everything.reasons) == {"doubtful"}
    relaxed = fitted_flat.predict_with_rejection(X)
    assert np.array_equal(relaxed.rejected, relaxed.kl < fitted_flat.rejection_rule().kl_threshold)
    assert ((relaxed.novelty > 0) & (relaxed.novelty <= 1)).all()


def test_unlike_probes_get_low_novelty_p_values(fitted_flat, digits_test):
    noise = np.random.default_rng(0).random((20, 64)).astype(np.float32)
    known = fitted_flat.predict_with_rejection(digits_test.X[:20]).novelty
    unseen = fitted_flat.predict_with_rejection(noise).novelty
    assert np.median(unseen) < np.median(known)


def test_same_seed_same_model(digits_train):
    keep = np.isin(digits_train.y, [4, 7])
    X, y = digits_train.X[keep][:120], digits_train.y[keep][:120]
    a = FlatRegenClassifier(**TINY, random_state=5).fit(X, y)
    b = FlatRegenClassifier(**TINY, random_state=5).fit(X, y)
    np.testing.assert_array_equal(a.class_distances(X[:5]), b.class_distances(X[:5]))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), y), "NaN"),
        (lambda X, y: (X * 3, y), "outside the allowed range"),
        (lambda X, y: (X[:, :, None, None], y), "2-D"),
        (lambda X, y: (X, np.zeros(len(y))), "at least 2 classes"),
        (lambda X, y: (X, y[:-1]), "y"),
        (lambda X, y: (X[:12], np.array([0] * 11 + [1])), f"at least {TrainingConfig().min_samples}"),
        (lambda X, y: (X.astype(str), y), "numbers"),
    ],
    ids=["nan", "range", "ndim", "single-class", "length", "tiny-class", "dtype"],
)
def test_bad_training_input_gets_a_one_line_error(digits_train, mutate, message):
    X, y = mutate(digits_train.X[:60].copy(), digits_train.y[:60] % 2)
    with pytest.raises(InvalidInputError, match=message) as info:
        FlatRegenClassifier(**TINY, likelihood="bernoulli").fit(X, y)
    assert "\n" not in str(info.value)


def test_bad_probes_and_unfitted_and_bad_params(fitted_flat):
    with pytest.raises(InvalidInputError, match="expecting 64 features"):
        fitted_flat.predict(np.zeros((2, 10), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="outside"):
        fitted_flat.predict(np.full((1, 64), 300))
    with pytest.raises(NotFittedError, match="not fitted"):
        FlatRegenClassifier().predict(np.zeros((1, 64)))
    with pytest.raises(ConfigError, match="decision"):
        FlatRegenClassifier(decision="mode").fit(np.zeros((20, 4)), [0, 1] * 10)


def test_integer_images_are_accepted(fitted_flat, digits_test):
    as_bytes = np.round(digits_test.X[:8] * 255).astype(np.uint8)
    np.testing.assert_array_equal(fitted_flat.predict(as_bytes), fitted_flat.predict(as_bytes / 255.0))


def test_novelty_references_follow_the_scoring_parameters_they_were_recorded_with(fitted_flat, digits_test, tmp_path):
    from regentree import load_model
    from regentree.errors import ConfigError

    X = digits_test.X[np.isin(digits_test.y, [0, 1, 2, 3])][:10]
    model = load_model(fitted_flat.save(tmp_path / "m"))
    assert model.reference_setup_ == fitted_flat.reference_setup_ and np.isfinite(model.predict_with_rejection(X).novelty).all()
    model.set_params(decision="median")
    assert np.isnan(model.predict_with_rejection(X).novelty).all()  # references of the mean do not apply
    model.set_params(novelty_threshold=0.01)
    with pytest.raises(ConfigError, match="decision was 'mean', is 'median'"):
        model.predict_with_rejection(X)
    with pytest.raises(ConfigError, match="cannot record a novelty reference"):
        model.add_class(digits_test.X[digits_test.y == 9], model.classes_[0].__class__("9"))
    model.set_params(decision="mean")
    assert np.isfinite(model.predict_with_rejection(X).novelty).all()


def test_conv_architecture_classifies_digits_and_round_trips(digits_train, digits_test, tmp_path):
    """A convolutional VAE per class goes through the same training, scoring and model folder as the MLP."""
    from regentree import load_model

    keep = np.isin(digits_train.y, [0, 1, 2, 3])
    model = FlatRegenClassifier(
        **{**TINY, "hidden_dims": (8, 16, 32), "epochs": 25}, architecture="conv", random_state=0
    ).fit(digits_train.X[keep], digits_train.y[keep], image_shape=(8, 8))
    assert model.vaes_[model.vae_keys_[0]].config.architecture == "conv"
    held = np.isin(digits_test.y, [0, 1, 2, 3])
    X, y = digits_test.X[held], digits_test.y[held]
    assert model.score(X, y) >= 0.9
    model.save(tmp_path / "conv")
    loaded = load_model(tmp_path / "conv")
    np.testing.assert_array_equal(loaded.predict(X[:20]), model.predict(X[:20]))
