"""Flat and tree estimators in scikit-learn's client patterns: pipelines, grid search, cross-validation, clone,
pickle / joblib round trips, and scores consistent with the decision rule."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import get_tags
from sklearn.utils.validation import has_fit_parameter

from regentree import FlatRegenClassifier, TreeRegenClassifier

SMALL = dict(hidden_dims=(16,), latent_dim=2, epochs=3, batch_size=32, patience=0, n_regenerations=10, base_epochs=0,
             rejection_target=None)
ESTIMATORS = {"flat": FlatRegenClassifier, "tree": TreeRegenClassifier}
KINDS = sorted(ESTIMATORS)


def make(kind: str, **params):
    """An unfitted small estimator of `kind` ("flat" or "tree")."""
    return ESTIMATORS[kind](**{**SMALL, **params})


@pytest.fixture(scope="module")
def three_digits(digits_train, digits_test):
    """Train and test images of digits 0, 1 and 2, pixels in [0, 1], labels as class names."""
    keep_train, keep_test = np.isin(digits_train.y, [0, 1, 2]), np.isin(digits_test.y, [0, 1, 2])
    return (digits_train.X[keep_train], digits_train.labels[keep_train],
            digits_test.X[keep_test], digits_test.labels[keep_test])


@pytest.fixture(scope="module")
def fitted(three_digits):
    """kind -> a small model fitted on three digits; the tree routes with no flat comparison (flat_below=1), so
    a leaf can be met before the last routing step."""
    X, y, _, _ = three_digits
    return {"flat": make("flat").fit(X, y), "tree": make("tree", flat_below=1).fit(X, y)}


@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_fits_predicts_and_scores_as_the_estimator_on_scaled_images(kind, three_digits):
    X, y, X_test, y_test = three_digits
    pipeline = make_pipeline(MinMaxScaler(clip=True), make(kind)).fit(X, y)
    scaler = MinMaxScaler(clip=True).fit(X)
    alone = make(kind).fit(scaler.transform(X), y)
    predicted = pipeline.predict(X_test)
    np.testing.assert_array_equal(predicted, alone.predict(scaler.transform(X_test)))
    assert pipeline.score(X_test, y_test) == np.mean(predicted == y_test)
    np.testing.assert_array_equal(pipeline.classes_, np.unique(y))


@pytest.mark.parametrize("kind", KINDS)
def test_grid_search_picks_the_best_candidate_and_refits_it(kind, three_digits):
    X, y, X_test, _ = three_digits
    grid = [5, 10]
    search = GridSearchCV(make(kind), {"n_regenerations": grid}, cv=2).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores >= 0) & (scores <= 1))
    assert search.best_params_["n_regenerations"] == grid[int(np.argmax(scores))]
    assert search.best_estimator_.n_regenerations == search.best_params_["n_regenerations"]
    np.testing.assert_array_equal(search.predict(X_test), search.best_estimator_.predict(X_test))


@pytest.mark.parametrize("kind", KINDS)
def test_cross_val_score_equals_fitting_clones_fold_by_fold(kind, three_digits):
    X, y, _, _ = three_digits
    folds = StratifiedKFold(n_splits=2)
    scores = cross_val_score(make(kind), X, y, cv=folds)
    by_hand = [clone(make(kind)).fit(X[train], y[train]).score(X[test], y[test]) for train, test in folds.split(X, y)]
    np.testing.assert_array_equal(scores, by_hand)


@pytest.mark.parametrize("kind", KINDS)
def test_clone_is_unfitted_with_equal_params(kind, fitted):
    model = fitted[kind]
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "vaes_") and not hasattr(copy, "classes_")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("round_trip", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trips_predict_identically(kind, round_trip, fitted, three_digits, tmp_path):
    model, X_test = fitted[kind], three_digits[2]
    if round_trip == "pickle":
        copy = pickle.loads(pickle.dumps(model))
    else:
        joblib.dump(model, tmp_path / "model.joblib")
        copy = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(copy.predict(X_test), model.predict(X_test))
    np.testing.assert_array_equal(copy.predict_proba(X_test), model.predict_proba(X_test))
    np.testing.assert_array_equal(copy.decision_function(X_test), model.decision_function(X_test))
    assert copy.get_params() == model.get_params()


@pytest.mark.parametrize("kind", KINDS)
def test_scores_agree_with_the_decision_rule(kind, fitted, three_digits):
    model, X_test = fitted[kind], three_digits[2]
    predicted = model.predict(X_test)
    proba = model.predict_proba(X_test)
    scores = model.decision_function(X_test)
    assert proba.shape == scores.shape == (len(X_test), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], predicted)
    np.testing.assert_array_equal(model.classes_[scores.argmax(axis=1)], predicted)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(proba, weights / weights.sum(axis=1, keepdims=True))


def test_tree_scores_only_the_leaves_of_the_last_routing_step(fitted, three_digits):
    model, X_test = fitted["tree"], three_digits[2]
    decision = model.decide(X_test)
    scores = model.decision_function(X_test)
    for probe, steps in enumerate(decision.trace):
        last = {model.tree_.classes(c)[0] for c in steps[-1]["children"] if model.tree_.is_leaf(c)}
        weighed = set(np.flatnonzero(np.isfinite(scores[probe])))
        assert weighed == last
        np.testing.assert_allclose(scores[probe, sorted(last)], -decision.class_scores[probe, sorted(last)])


@pytest.mark.parametrize("kind", KINDS)
def test_two_classes_give_one_score_per_probe_positive_for_the_second(kind, three_digits):
    X, y, X_test, _ = three_digits
    keep = y != y[0]
    model = make(kind).fit(X[keep], y[keep])
    scores = model.decision_function(X_test)
    assert scores.shape == (len(X_test),)
    np.testing.assert_array_equal(model.classes_[(scores > 0).astype(int)], model.predict(X_test))
    order = np.argsort(scores, kind="stable")
    ranked = model.predict_proba(X_test)[order, 1]  # p(second class) in the order of the scores: rising
    assert np.all(np.diff(ranked) >= -np.finfo(ranked.dtype).eps)


@pytest.mark.parametrize("kind", KINDS)
def test_tags_and_no_sample_weight(kind):
    model = make(kind)
    assert is_classifier(model) and get_tags(model).target_tags.required
    assert not has_fit_parameter(model, "sample_weight")  # meta-estimators must not hand weights to fit
