"""Tests of regentree.evaluation.baseline.SoftmaxBaseline on sklearn's 8x8 digits."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from regentree.evaluation.baseline import SoftmaxBaseline
from regentree.errors import InvalidInputError, NotFittedError


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def fitted(digits):
    X_train, _, y_train, _ = digits
    return SoftmaxBaseline(epochs=5).fit(X_train, y_train)


def test_init_only_stores_params_and_clones():
    est = SoftmaxBaseline(hidden_dims=(32,), epochs=2, lr=0.01, random_state=3)
    assert est.get_params() == {
        "hidden_dims": (32,), "epochs": 2, "batch_size": 128, "lr": 0.01, "random_state": 3, "device": "cpu",
    }
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(est, "model_")


def test_accuracy_on_digits(fitted, digits):
    _, X_test, _, y_test = digits
    assert fitted.score(X_test, y_test) > 0.9
    np.testing.assert_array_equal(fitted.classes_, np.arange(10))
    assert fitted.n_features_in_ == 64


def test_probabilities_and_max_softmax(fitted, digits):
    _, X_test, _, _ = digits
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (X_test.shape[0], 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    conf = fitted.max_softmax(X_test)
    assert conf.shape == (X_test.shape[0],)
    assert np.all(conf > 0) and np.all(conf <= 1)
    np.testing.assert_array_equal(fitted.predict(X_test), fitted.classes_[proba.argmax(axis=1)])


def test_same_seed_same_model_other_seed_other_model(digits):
    X_train, X_test, y_train, _ = digits
    small = {"hidden_dims": (64,), "epochs": 2}
    a = SoftmaxBaseline(**small, random_state=1).fit(X_train, y_train).predict_proba(X_test)
    b = SoftmaxBaseline(**small, random_state=1).fit(X_train, y_train).predict_proba(X_test)
    c = SoftmaxBaseline(**small, random_state=2).fit(X_train, y_train).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_string_labels_round_trip(digits):
    X_train, X_test, y_train, _ = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    est = SoftmaxBaseline(hidden_dims=(32,), epochs=1).fit(X_train, names[y_train])
    assert set(est.predict(X_test)) <= set(names)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones((4, 3), dtype=np.uint8), "float array"),
        (np.full((4, 3), 2.0), r"\[0, 1\]"),
        (np.full((4, 3), np.nan), r"\[0, 1\]"),
        (np.ones(4), "n_samples, n_features"),
    ],
)
def test_fit_validates_X(X, match):
    with pytest.raises(InvalidInputError, match=match):
        SoftmaxBaseline(epochs=1).fit(X, [0, 1, 0, 1])


def test_fit_validates_y_and_predict_needs_fit(fitted):
    X = np.zeros((4, 3))
    with pytest.raises(InvalidInputError, match="at least 2 classes"):
        SoftmaxBaseline(epochs=1).fit(X, [0, 0, 0, 0])
    with pytest.raises(InvalidInputError, match="y must have shape"):
        SoftmaxBaseline(epochs=1).fit(X, [0, 1])
    with pytest.raises(NotFittedError):
        SoftmaxBaseline().predict(X)
    with pytest.raises(InvalidInputError, match="64"):
        fitted.predict(X)


class _FixedBaseline:
    """A stand-in with known probabilities, to check `baseline_report` by hand."""

    hidden_dims, epochs, classes_ = (8,), 1, np.array(["a", "b"])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.55, 0.45], [0.2, 0.8]])

    def predict_proba(self, X):
        return self.proba[: len(X)]

    def max_softmax(self, X):
        return np.full(len(X), 0.7)


def test_baseline_report_matches_hand_computed_values():
    from regentree.data import Dataset
    from regentree.evaluation.evaluate import baseline_report

    X = np.zeros((4, 4), dtype=np.float32)
    data = Dataset(X=X, y=np.array([0, 1, 1, 1]), class_names=["a", "b"], image_shape=(2, 2), source="hand")
    report = baseline_report(_FixedBaseline(), data, {"flat": 0.25}, unseen=data.subset(np.arange(2)))
    # predictions a, b, a, b -> probe 2 wrong; the least confident (0.55) is probe 2, rejected at 25 %
    assert report["accuracy_no_rejection"] == 0.75
    matched = report["at_rejection_rate_of"]["flat"]
    assert matched["n_rejected"] == 1 and matched["accuracy"] == 1.0 and matched["p_miss"] == 0.0
    # known confidences 0.9, 0.6, 0.55, 0.8 vs unseen 0.7, 0.7: outlier score 1 - p puts 2 of 4 known above
    assert report["unseen_msp"]["auroc"] == pytest.approx(0.5)
