"""Conformal p-values and prediction sets: hand-computed values, the coverage guarantee, and the estimators' API."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
from conftest import TINY

from regentree import RegenEnsemble, TreeRegenClassifier
from regentree.data.validation import class_indices
from regentree.rejection.conformal import coverage_report, expected_coverage, mondrian_p_values, prediction_sets
from regentree.errors import ConfigError, InvalidInputError, NotFittedError


# --------------------------------------------------------------------------- arithmetic
def test_p_values_match_hand_computed_values():
    calibration = [np.array([3.0, 1.0, 4.0, 2.0]), np.array([10.0])]
    scores = np.array([[2.5, 9.0], [2.0, 10.0], [5.0, 11.0], [0.0, 10.5]])
    # class 0: #{cal >= s} = 2, 3, 0, 4 of 4 -> (1 + k) / 5; class 1: 1, 1, 0, 0 of 1 -> (1 + k) / 2
    expected = np.array([[3 / 5, 1.0], [4 / 5, 1.0], [1 / 5, 1 / 2], [1.0, 1 / 2]])
    np.testing.assert_allclose(mondrian_p_values(calibration, scores), expected)


def test_sets_hold_classes_whose_p_value_exceeds_one_minus_confidence():
    p = np.array([[0.5, 0.1, 0.05], [0.09, 0.2, 2 / 20]])  # p = 1 - confidence exactly is out
    np.testing.assert_array_equal(prediction_sets(p, 0.9), [[True, False, False], [False, True, False]])


def test_coverage_report_counts_hand_made_sets():
    sets = np.array([[True, True], [False, True], [False, False], [True, False]])
    report = coverage_report(sets, np.array([0, 0, 1, 0]))
    assert report["coverage"] == 0.5
    assert report["class_coverage"] == {0: pytest.approx(2 / 3), 1: 0.0}
    assert (report["worst_class"], report["worst_class_coverage"]) == (1, 0.0)
    assert report["mean_set_size"] == 1.0 and report["empty_share"] == 0.25


@pytest.mark.parametrize("bad", [
    lambda: mondrian_p_values([np.array([1.0])], np.array([[np.nan]])),
    lambda: mondrian_p_values([np.array([])], np.array([[1.0]])),
    lambda: mondrian_p_values([np.array([1.0])], np.array([[1.0, 2.0]])),
    lambda: prediction_sets(np.array([[0.5]]), 1.0),
])
def test_bad_input_raises_one_line_errors(bad):
    with pytest.raises(InvalidInputError):
        bad()


def test_expected_coverage_is_the_exact_rank_formula():
    assert expected_coverage(9, 0.9) == 0.9  # floor(0.1 * 10) = 1 of 10 ranks excluded
    assert expected_coverage(18, 0.9) == pytest.approx(1 - 1 / 19)  # floor(1.9) = 1 of 19
    assert expected_coverage(5, 0.9) == 1.0  # no rank small enough: the set always holds the class


@pytest.mark.parametrize("discrete", [False, True])
def test_class_conditional_coverage_holds_over_many_seeds(discrete):
    """Each trial draws fresh calibration scores and one test probe per class from three different
    distributions; the indicator 'true class in the set' is then Bernoulli with the exact coverage
    (continuous scores) or at least it (ties, discrete scores). Over T trials the share deviates from
    its mean by 4 binomial standard deviations in fewer than 1 in 15,000 runs."""
    confidence, n_cal, trials = 0.9, (19, 30, 50), 3000
    covered = np.zeros((trials, 3))
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        draw = [partial(rng.normal, 0, 1), partial(rng.exponential, 2), partial(rng.gamma, 3, 1)]
        if discrete:
            draw = [lambda n, d=d: np.round(d(n)) for d in draw]
        calibration = [draw[c](n_cal[c]) for c in range(3)]
        scores = np.column_stack([draw[c](3) for c in range(3)])  # row i: a probe of class i, scored under all
        sets = prediction_sets(mondrian_p_values(calibration, scores), confidence)
        covered[seed] = sets[np.arange(3), np.arange(3)]
    for c in range(3):
        exact = expected_coverage(n_cal[c], confidence)
        tolerance = 4 * np.sqrt(exact * (1 - exact) / trials)
        assert covered[:, c].mean() >= confidence - tolerance
        if not discrete:
            assert abs(covered[:, c].mean() - exact) <= tolerance
    assert covered.mean() >= confidence - 4 * np.sqrt(0.09 / covered.size)


# --------------------------------------------------------------------------- estimators
@pytest.fixture(scope="module")
def four_digit_split(digits_test):
    """Test images of digits 0-3 (class names as labels) in a random calibration and evaluation half."""
    names = np.asarray(digits_test.class_names)
    keep = np.flatnonzero(np.isin(digits_test.y, range(4)))
    order = np.random.default_rng(0).permutation(keep)
    cal, ev = order[: len(order) // 2], order[len(order) // 2 :]
    return digits_test.X[cal], names[digits_test.y[cal]], digits_test.X[ev], names[digits_test.y[ev]]


def test_flat_coverage_on_digits_is_near_the_target(fitted_flat, four_digit_split):
    X_cal, y_cal, X_ev, y_ev = four_digit_split
    conformal = copy.deepcopy(fitted_flat).conformalize(X_cal, y_cal)
    report = coverage_report(conformal.predict_set(X_ev, 0.9), class_indices(conformal.classes_, y_ev))
    # ~72 evaluation probes: one binomial standard deviation of the coverage is about 0.035
    assert report["coverage"] >= 0.9 - 3 * 0.035
    assert report["mean_set_size"] < 4


def test_without_conformalize_the_novelty_references_calibrate(fitted_flat, four_digit_split):
    X_ev = four_digit_split[2][:10]
    references = [fitted_flat.reference_distortions_[k] for k in fitted_flat.vae_keys_]
    expected = mondrian_p_values(references, fitted_flat.class_distortions(X_ev))
    np.testing.assert_allclose(fitted_flat.predict_p(X_ev), expected)


def test_conformal_scores_are_the_true_class_distortions(fitted_flat, four_digit_split):
    X_cal, y_cal, _, _ = four_digit_split
    model = copy.deepcopy(fitted_flat).conformalize(X_cal, y_cal)
    y_index = class_indices(model.classes_, y_cal)
    scores = fitted_flat.class_distortions(X_cal)
    for c in range(len(model.classes_)):
        np.testing.assert_allclose(model.conformal_scores_[c], np.sort(scores[y_index == c, c]))


def test_conformalize_rejects_missing_classes_and_changed_scoring(fitted_flat, four_digit_split):
    X_cal, y_cal, X_ev, _ = four_digit_split
    model = copy.deepcopy(fitted_flat)
    keep = y_cal != y_cal[0]
    with pytest.raises(InvalidInputError, match="no image of class"):
        model.conformalize(X_cal[keep], y_cal[keep])
    with pytest.raises(InvalidInputError, match="confidence"):
        model.predict_set(X_ev, confidence=0)
    model.conformalize(X_cal, y_cal).set_params(noise_variance=0.5)
    with pytest.raises(ConfigError, match="conformal scores"):
        model.predict_p(X_ev)
    model.set_params(noise_variance=fitted_flat.noise_variance).conformalize(X_cal, y_cal)
    model.remove_class(model.classes_[0])
    with pytest.raises(ConfigError, match="other classes"):
        model.predict_p(X_ev)


def test_ensemble_needs_conformalize(fitted_flat, four_digit_split):
    X_cal, y_cal, X_ev, _ = four_digit_split
    ensemble = RegenEnsemble.from_fitted([fitted_flat, copy.deepcopy(fitted_flat)])
    with pytest.raises(NotFittedError, match="conformalize"):
        ensemble.predict_p(X_ev)
    p = ensemble.conformalize(X_cal, y_cal).predict_p(X_ev)
    assert p.shape == (len(X_ev), 4) and np.all((p > 0) & (p <= 1))


def test_tree_scores_every_leaf_for_its_p_values(digits_train, four_digit_split):
    names = np.asarray(digits_train.class_names)
    keep = np.isin(digits_train.y, range(4))
    tree = TreeRegenClassifier(**TINY, flat_below=1).fit(digits_train.X[keep], names[digits_train.y[keep]], image_shape=(8, 8))
    X_ev = four_digit_split[2][:12]
    assert np.isnan(tree.decide(X_ev).class_scores).any()  # routing meets only some leaves
    scores = tree.class_distortions(X_ev)
    assert not np.isnan(scores).any()
    winners = tree.decide(X_ev).class_scores
    met = ~np.isnan(winners)
    np.testing.assert_allclose(scores[met], winners[met], rtol=1e-5)
    assert tree.predict_p(X_ev).shape == (12, 4)


def test_conformal_scores_use_every_draw_even_when_the_model_scores_adaptively(fitted_flat, digits_test):
    fixed = fitted_flat.class_distortions(digits_test.X[:20])
    adaptive = copy.copy(fitted_flat).set_params(adaptive=True, n_regenerations_min=4)
    np.testing.assert_array_equal(adaptive.class_distortions(digits_test.X[:20]), fixed)
    assert adaptive.adaptive  # the model's own setting is left as it was
