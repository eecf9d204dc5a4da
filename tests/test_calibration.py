"""Tests of regentree.rejection.calibration: thresholds chosen for a target, on arrays and on a tiny digits model."""

import copy
import json

import numpy as np
import pytest

from regentree import load_model
from regentree.data.validation import class_indices
from regentree.rejection.calibration import calibrate_model, choose_thresholds, combined_confidence
from regentree.data import load_digits_dataset
from regentree.errors import InvalidInputError
from regentree.rejection.thresholds import RejectionRule

# --- on arrays ------------------------------------------------------------------------------------


@pytest.fixture()
def scores():
    rng = np.random.default_rng(0)
    n = 1000
    kl = rng.gamma(2.0, 3.0, n)
    novelty = rng.uniform(0.0, 1.0, n)
    # confident probes (high KL, high p) are right more often
    correct = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(kl - 1.0 + 8.0 * (novelty - 0.2))))
    return kl, novelty, correct


@pytest.mark.parametrize("rule", ["kl", "novelty", "both"])
@pytest.mark.parametrize("rate", [0.0, 0.02, 0.1])
def test_max_rejection_is_met_and_tight(scores, rule, rate):
    kl, novelty, correct = scores
    chosen, report = choose_thresholds(kl, novelty, correct, max_rejection=rate, rule=rule)
    rejected, _ = chosen.apply(kl, novelty)
    assert rejected.mean() <= rate
    assert rejected.mean() >= rate - 0.002  # continuous scores: the budget is used, not wasted
    assert report["rejection_rate"] == pytest.approx(rejected.mean())
    assert (chosen.kl_threshold is None) == (rule == "novelty")
    assert (chosen.novelty_threshold is None) == (rule == "kl")


def test_both_splits_the_budget_between_the_rules(scores):
    kl, novelty, correct = scores
    chosen, report = choose_thresholds(kl, novelty, correct, max_rejection=0.1, rule="both")
    assert report["rejected_doubtful"] > 20 and report["rejected_unseen"] > 20
    assert report["rejected_doubtful"] + report["rejected_unseen"] <= 100
    # the same level of each rule: about the same share of calibration probes below each threshold
    assert abs(np.mean(kl < chosen.kl_threshold) - np.mean(novelty < chosen.novelty_threshold)) < 1e-9


@pytest.mark.parametrize("rule", ["kl", "novelty", "both"])
def test_max_selective_error_is_met_with_least_rejection(scores, rule):
    kl, novelty, correct = scores
    target = 0.02
    assert 1.0 - correct.mean() > target  # rejection is needed
    chosen, report = choose_thresholds(kl, novelty, correct, max_selective_error=target, rule=rule)
    rejected, _ = chosen.apply(kl, novelty)
    assert 1.0 - correct[~rejected].mean() <= target
    assert report["selective_error"] == pytest.approx(1.0 - correct[~rejected].mean())
    if rule == "kl":  # one threshold lower (the next smaller KL value) misses the target
        lower = np.max(kl[kl < chosen.kl_threshold])
        keep = kl >= lower
        assert 1.0 - correct[keep].mean() > target


def test_selective_error_hand_computed():
    kl = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    correct = np.array([False, True, False, True, True])
    chosen, report = choose_thresholds(kl, np.ones(5), correct, max_selective_error=0.3, rule="kl")
    # keeping KL >= 2 leaves 1 error in 4 (0.25); keeping all leaves 2 in 5 (0.4)
    assert chosen.kl_threshold == 2.0
    assert report["rejection_rate"] == pytest.approx(0.2)
    assert report["p_miss"] == 0.0
    assert report["accuracy"] == pytest.approx(0.75)


def test_combined_confidence_hand_computed():
    conf = combined_confidence([2.5, 0.5], [0.9, 0.9], kl_reference=[1, 2, 3, 4], novelty_reference=[0.1, 0.2, 0.5, 1.0])
    # KL 2.5: 2 of 4 references <= it; p 0.9: 3 of 4 -> min 0.5; KL 0.5: 0 of 4 -> 0
    np.testing.assert_allclose(conf, [0.5, 0.0])


def test_both_targets_conflict_is_an_error(scores):
    kl, novelty, correct = scores
    with pytest.raises(InvalidInputError, match="more than max_rejection"):
        choose_thresholds(kl, novelty, correct, max_rejection=0.01, max_selective_error=0.001, rule="kl")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "needs a target"), ({"max_rejection": 1.0}, "max_rejection"), ({"max_rejection": -0.1}, "max_rejection"),
     ({"max_selective_error": 2.0}, "max_selective_error"), ({"max_rejection": 0.1, "rule": "odd"}, "unknown rule")],
)
def test_bad_targets_raise(scores, kwargs, message):
    kl, novelty, correct = scores
    with pytest.raises(InvalidInputError, match=message):
        choose_thresholds(kl, novelty, correct, **kwargs)


def test_unreachable_selective_error_raises():
    with pytest.raises(InvalidInputError, match="no threshold reaches"):
        choose_thresholds([1.0, 2.0], [0.5, 0.5], [False, False], max_selective_error=0.1)


@pytest.mark.parametrize("rule", ["kl", "novelty", "both"])
def test_confidence_holds_the_rejection_bound_on_new_probes(rule):
    """Over many calibration draws, new probes are rejected above the target in at most 1 - confidence
    of them, while the uncalibrated-for-new-data choice overshoots in about half."""
    rng = np.random.default_rng(1)
    rate, confidence, n, draws = 0.05, 0.9, 1000, 200
    over = {None: 0, confidence: 0}
    for _ in range(draws):
        cal_kl, cal_nov = rng.gamma(2.0, 3.0, n), rng.uniform(size=n)
        new_kl, new_nov = rng.gamma(2.0, 3.0, 20_000), rng.uniform(size=20_000)
        for level in over:
            chosen, _ = choose_thresholds(cal_kl, cal_nov, np.ones(n, bool), max_rejection=rate, rule=rule,
                                          confidence=level)
            over[level] += chosen.apply(new_kl, new_nov)[0].mean() > rate
    assert over[confidence] / draws <= 1.0 - confidence + 0.05
    assert over[None] / draws > 0.25


def test_confidence_is_the_beta_order_statistic_bound():
    from scipy.stats import beta
    from regentree.rejection.thresholds import threshold_for_rejection_rate

    scores = np.arange(1.0, 1001.0)  # the k-th smallest is k
    k = threshold_for_rejection_rate(scores, 0.05, confidence=0.95)
    assert beta.cdf(0.05, k, 1001 - k) >= 0.95 > beta.cdf(0.05, k + 1, 1000 - k)
    assert k < threshold_for_rejection_rate(scores, 0.05)  # stricter than the calibration-set bound
    assert threshold_for_rejection_rate(scores[:10], 0.05, confidence=0.95) == -np.inf  # too few to promise


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_rejection": 0.05, "confidence": 1.0}, "confidence must be in"),
     ({"max_selective_error": 0.05, "confidence": 0.9}, "max_rejection target alone"),
     ({"max_rejection": 0.01, "confidence": 0.99}, "too few to promise")],
)
def test_bad_confidence_raises(kwargs, message):
    rng = np.random.default_rng(0)
    kl = rng.gamma(2.0, 3.0, 100)
    with pytest.raises(InvalidInputError, match=message):
        choose_thresholds(kl, np.ones(100), np.ones(100, bool), **kwargs)


def test_class_indices_match_by_text():
    np.testing.assert_array_equal(class_indices(np.array(["0", "1", "7"]), [7, 0, 7]), [2, 0, 2])
    with pytest.raises(InvalidInputError, match="not classes"):
        class_indices(np.array([0, 1]), [3])


# --- on a tiny digits model --------------------------------------------------------------------------


@pytest.fixture()
def digits_model(fitted_flat):
    """A private copy of the shared tiny model (digits 0-3), free to calibrate."""
    return copy.deepcopy(fitted_flat)


@pytest.fixture(scope="module")
def calibration_set():
    test = load_digits_dataset("test")
    keep = np.isin(test.y, [0, 1, 2, 3])
    return test.X[keep], test.labels[keep]


@pytest.mark.parametrize("rule", ["kl", "novelty", "both"])
def test_calibrated_model_meets_its_target_on_the_calibration_set(digits_model, calibration_set, rule):
    X, y = calibration_set
    model = calibrate_model(digits_model, X, y, max_rejection=0.05, rule=rule)
    prediction = model.predict_with_rejection(X)
    assert model.rejection_rule() is model.calibrated_rule_
    assert prediction.rejected.mean() <= 0.05
    assert prediction.rejected.mean() == pytest.approx(model.calibration_report_["rejection_rate"])
    assert model.calibration_report_["n_calibration"] == len(X)


def test_selective_error_target_on_the_model(digits_model, calibration_set):
    X, y = calibration_set
    digits_model.calibrate(X, y, max_selective_error=0.03, rule="kl")
    prediction = digits_model.predict_with_rejection(X)
    kept = ~prediction.rejected
    assert np.mean(prediction.labels[kept] != y[kept]) <= 0.03
    assert set(prediction.reasons[prediction.rejected]) == {"doubtful"}


def test_thresholds_persist_and_reload(digits_model, calibration_set, tmp_path):
    X, y = calibration_set
    digits_model.calibrate(X, y, max_rejection=0.1, rule="both")
    digits_model.save(tmp_path / "model")
    text = (tmp_path / "model" / "manifest.json").read_text()
    manifest = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert manifest["calibrated"] is True
    assert manifest["calibration"]["rule"] == "both"
    loaded = load_model(tmp_path / "model")
    assert loaded.rejection_rule() == digits_model.calibrated_rule_
    assert loaded.calibration_report_ == manifest["calibration"]
    np.testing.assert_array_equal(loaded.predict_with_rejection(X[:40]).rejected,
                                  digits_model.predict_with_rejection(X[:40]).rejected)


def test_infinite_threshold_is_strict_json_and_round_trips(digits_model, tmp_path):
    digits_model.calibrated_rule_ = RejectionRule(kl_threshold=np.inf, novelty_threshold=0.01)
    digits_model.calibration_report_ = {"rule": "kl", "kl_threshold": np.inf, "accuracy": np.nan}
    try:
        digits_model.save(tmp_path / "model")
    finally:
        del digits_model.calibrated_rule_, digits_model.calibration_report_
    json.loads((tmp_path / "model" / "manifest.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    loaded = load_model(tmp_path / "model")
    assert loaded.rejection_rule().kl_threshold == np.inf
    assert loaded.calibration_report_ == {"rule": "kl", "kl_threshold": np.inf, "accuracy": None}
