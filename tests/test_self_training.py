"""Rejection-gated self-training: selection by the KL rule, capping, retraining on the grown data."""

from __future__ import annotations

import numpy as np
import pytest

from regentree import FlatRegenClassifier
from regentree.errors import ConfigError, InvalidInputError
from regentree.estimators.self_training import select_confident, self_train

from conftest import TINY


def test_select_confident_keeps_only_probes_at_or_above_the_threshold():
    kl = np.array([0.5, 12.0, 10.0, 30.0, 9.99])
    assert select_confident(kl, np.zeros(5, int), 10.0).tolist() == [1, 2, 3]


def test_select_confident_caps_each_class_by_highest_kl():
    kl = np.array([11.0, 50.0, 20.0, 15.0, 40.0, 1.0])
    classes = np.array([0, 0, 0, 1, 1, 1])
    assert select_confident(kl, classes, 10.0, max_per_class=1).tolist() == [1, 4]
    assert select_confident(np.zeros(3), np.zeros(3, int), 10.0, max_per_class=2).tolist() == []


@pytest.fixture(scope="module")
def split(digits_train):
    keep = np.flatnonzero(np.isin(digits_train.y, [0, 1, 2]))
    labelled = np.concatenate([keep[digits_train.y[keep] == c][:20] for c in (0, 1, 2)])
    pool = np.setdiff1d(keep, labelled)
    names = np.asarray(digits_train.class_names)
    return (digits_train.X[labelled], names[digits_train.y[labelled]], digits_train.X[pool],
            names[digits_train.y[pool]])


def test_self_train_adds_confident_pseudo_labels_and_retrains(split):
    X_l, y_l, X_u, y_u = split
    template = FlatRegenClassifier(**TINY, random_state=0)
    initial = FlatRegenClassifier(**TINY, random_state=0).fit(X_l, y_l, image_shape=(8, 8))
    kl = initial.decide(X_u).kl
    result = self_train(template, X_l, y_l, X_u, kl_threshold=2.0, initial=initial)

    assert result.model is not initial
    assert np.all(kl[result.pseudo_index] >= 2.0)
    assert len(result.pseudo_index) == int(np.sum(kl >= 2.0)) > 0
    assert result.rounds[0]["n_added"] == len(result.pseudo_index)
    assert sum(result.rounds[0]["added_per_class"].values()) == len(result.pseudo_index)
    trained_on = sum(info["n_samples"] for info in result.model.training_info_.values())
    held_out = result.model.calibration_report_["n_calibration"]  # the default fit calibrates on a held-out 10 %
    assert trained_on + held_out == len(X_l) + len(result.pseudo_index) and held_out > 0
    assert np.mean(result.pseudo_labels == y_u[result.pseudo_index]) > 0.8  # confident probes are mostly right
    assert template.get_params() == FlatRegenClassifier(**TINY, random_state=0).get_params()  # template untouched


def test_self_train_checks_its_arguments(split):
    X_l, y_l, X_u, _ = split
    template = FlatRegenClassifier(**TINY)
    with pytest.raises(ConfigError, match="n_rounds"):
        self_train(template, X_l, y_l, X_u, n_rounds=0)
    with pytest.raises(InvalidInputError, match="X_unlabelled"):
        self_train(template, X_l, y_l, X_u[:, :10])
