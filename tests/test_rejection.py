"""Tests of regentree.rejection.kl: KL estimators, first/second KL, novelty p-values, thresholds, rules."""

import dataclasses
import json

import numpy as np
import pytest

from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.rejection.kl import KL_ESTIMATORS, first_second_kl, kl_divergence
from regentree.rejection.novelty import NoveltyScorer
from regentree.rejection.thresholds import RejectionRule, threshold_for_rejection_rate, threshold_for_selective_error

ESTIMATORS = sorted(KL_ESTIMATORS)


def gaussian_kl(m1, s1, m2, s2):
    """Closed-form KL(N(m1, s1^2) || N(m2, s2^2))."""
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


# --- KL estimators -------------------------------------------------------------------------------


def test_registry_holds_both_estimators():
    assert set(KL_ESTIMATORS) == {"gaussian", "kde"}


@pytest.mark.parametrize(("estimator", "n", "tol"), [("gaussian", 20000, 0.02), ("kde", 5000, 0.05)])
def test_matches_closed_form_of_two_gaussians(estimator, n, tol):
    rng = np.random.default_rng(0)
    p, q = rng.normal(0.0, 1.0, n), rng.normal(1.0, 1.5, n)
    assert kl_divergence(p, q, estimator) == pytest.approx(gaussian_kl(0, 1, 1, 1.5), abs=tol)
    if estimator == "gaussian":  # KDE tails are too thin for KL(wide || narrow)
        assert kl_divergence(q, p, estimator) == pytest.approx(gaussian_kl(1, 1.5, 0, 1), abs=tol)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_kl_of_a_distribution_with_itself_is_zero(estimator):
    rng = np.random.default_rng(1)
    p = rng.normal(3.0, 0.5, 300)
    assert kl_divergence(p, p, estimator) == pytest.approx(0.0, abs=1e-9)
    assert kl_divergence(p, rng.normal(3.0, 0.5, 300), estimator) < 0.05


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_kl_is_asymmetric(estimator):
    rng = np.random.default_rng(2)
    narrow, wide = rng.normal(0.0, 0.5, 2000), rng.normal(0.0, 2.0, 2000)
    forward, backward = kl_divergence(narrow, wide, estimator), kl_divergence(wide, narrow, estimator)
    # closed forms: 0.64 and 4.11
    assert backward > 3 * forward


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_kl_grows_with_mean_separation(estimator):
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 1.0, 300)
    other = rng.normal(0.0, 1.0, 300)
    values = [kl_divergence(base, other + shift, estimator) for shift in (0.0, 0.5, 1.0, 2.0, 3.0)]
    assert np.all(np.diff(values) > 0)


def test_gaussian_does_not_saturate_over_the_paper_threshold_range():
    rng = np.random.default_rng(4)
    base, other = rng.normal(0.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    values = np.array([kl_divergence(base, other + shift) for shift in (1.5, 3.0, 4.5, 6.5, 10.0)])
    assert np.all(np.diff(values) > 1.0)
    assert values[0] < 5 and values[-1] > 20


def test_leading_dims_broadcast_and_match_a_loop():
    rng = np.random.default_rng(5)
    p = rng.normal(size=(4, 3, 50))
    q = rng.normal(1.0, 2.0, size=(3, 60))
    kl = kl_divergence(p, q)
    assert kl.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            assert kl[i, j] == pytest.approx(float(kl_divergence(p[i, j], q[j])))
    kde = kl_divergence(p[:2], q, "kde")
    assert kde.shape == (2, 3)
    assert kde[1, 2] == pytest.approx(float(kl_divergence(p[1, 2], q[2], "kde")))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_constant_samples_give_finite_values(estimator):
    same = kl_divergence(np.full(10, 2.0), np.full(10, 2.0), estimator)
    apart = kl_divergence(np.full(10, 2.0), np.full(10, 3.0), estimator)
    assert same == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(apart) and apart > 20
    zeros = kl_divergence(np.zeros(5), np.zeros(5), estimator)
    assert zeros == pytest.approx(0.0, abs=1e-9)


def test_unknown_estimator_lists_the_valid_names():
    with pytest.raises(ConfigError, match="gaussian, kde"):
        kl_divergence(np.ones(3), np.ones(3), "histogram")


@pytest.mark.parametrize(
    ("p", "q", "match"),
    [
        (np.ones((3, 1)), np.ones((3, 5)), "p_samples needs at least 2"),
        (np.array([1.0, np.nan]), np.ones(4), "p_samples contains NaN"),
        (np.ones((3, 5)), np.ones((4, 5)), "do not broadcast"),
    ],
)
def test_invalid_samples(p, q, match):
    with pytest.raises(InvalidInputError, match=match):
        kl_divergence(p, q)


# --- first / second ---------------------------------------------------------------------------------


def test_first_second_kl_uses_the_best_two_vaes():
    rng = np.random.default_rng(6)
    distances = rng.normal(size=(2, 3, 40)) + np.array([[2.0, 0.0, 1.0], [0.0, 5.0, 3.0]])[:, :, None]
    order = np.argsort(distances.mean(axis=2), axis=1)
    np.testing.assert_array_equal(order, [[1, 2, 0], [0, 2, 1]])
    kl = first_second_kl(distances, order)
    assert kl.shape == (2,)
    assert kl[0] == pytest.approx(float(kl_divergence(distances[0, 1], distances[0, 2])))
    assert kl[1] == pytest.approx(float(kl_divergence(distances[1, 0], distances[1, 2])))
    assert first_second_kl(distances, order, "kde").shape == (2,)


@pytest.mark.parametrize(
    ("shape", "order", "match"),
    [
        ((2, 1, 5), np.zeros((2, 1), dtype=int), "at least 2 VAEs"),
        ((2, 3, 5), np.zeros((3, 3), dtype=int), "order must have shape"),
        ((2, 3, 5), np.full((2, 3), 3), "integer VAE indices"),
        ((2, 3), np.zeros((2, 3), dtype=int), "n_probes, n_vaes, K"),
    ],
)
def test_first_second_kl_rejects_bad_input(shape, order, match):
    with pytest.raises(InvalidInputError, match=match):
        first_second_kl(np.ones(shape), order)


# --- novelty ------------------------------------------------------------------------------------------


def test_novelty_p_values_by_hand():
    scorer = NoveltyScorer().fit({0: [4.0, 1.0, 3.0, 2.0], 2: [10.0]})
    np.testing.assert_array_equal(scorer.reference_[0], [1.0, 2.0, 3.0, 4.0])
    # class 0, n_ref = 4: d=2.5 -> #{ref >= d}=2 -> 3/5; d=0 -> 5/5; d=10 -> 1/5; d=4 (tie) -> 2/5
    # class 2, n_ref = 1: d=9 -> 2/2; d=11 -> 1/2
    p = scorer.score([0, 0, 0, 0, 2, 2], [2.5, 0.0, 10.0, 4.0, 9.0, 11.0])
    np.testing.assert_allclose(p, [0.6, 1.0, 0.2, 0.4, 1.0, 0.5])


def test_novelty_accepts_a_list_and_flags_unknown_classes():
    scorer = NoveltyScorer().fit([np.array([1.0, 2.0]), np.array([5.0])])
    assert sorted(scorer.reference_) == [0, 1]
    with pytest.raises(InvalidInputError, match=r"without reference distortions: \[7\]"):
        scorer.score([0, 7], [1.0, 1.0])


def test_novelty_errors():
    with pytest.raises(NotFittedError):
        NoveltyScorer().score([0], [1.0])
    with pytest.raises(InvalidInputError, match="class 1"):
        NoveltyScorer().fit({0: [1.0], 1: []})
    scorer = NoveltyScorer().fit({0: [1.0]})
    with pytest.raises(InvalidInputError, match="same length"):
        scorer.score([0, 0], [1.0])


def test_novelty_roundtrips_through_json():
    scorer = NoveltyScorer().fit({3: [0.5, 0.1], 1: [2.0]})
    state = json.loads(json.dumps(scorer.to_dict()))
    restored = NoveltyScorer.from_dict(state)
    assert restored.reference_.keys() == scorer.reference_.keys()
    for key in scorer.reference_:
        np.testing.assert_array_equal(restored.reference_[key], scorer.reference_[key])
    with pytest.raises(ConfigError):
        NoveltyScorer.from_dict({"refs": {}})
    with pytest.raises(ConfigError):
        NoveltyScorer.from_dict({"reference": {"x": [1.0]}})


# --- threshold calibration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 1.0), (0.39, 2.0), (0.4, 3.0), (0.99, 5.0), (1.0, np.inf)])
def test_threshold_for_rejection_rate_by_hand(rate, expected):
    # sorted scores 1..5; rate 0.4 of 5 -> at most 2 rejected -> threshold 3 rejects {1, 2}
    assert threshold_for_rejection_rate([5.0, 1.0, 3.0, 2.0, 4.0], rate) == expected


def test_threshold_for_rejection_rate_never_exceeds_the_rate():
    rng = np.random.default_rng(7)
    scores = np.round(rng.exponential(size=200), 1)  # many ties
    for rate in (0.0, 0.01, 0.05, 0.1, 0.33, 0.5):
        thr = threshold_for_rejection_rate(scores, rate)
        assert np.mean(scores < thr) <= rate
    assert threshold_for_rejection_rate([1.0, 1.0, 1.0, 2.0], 0.5) == 1.0


def test_threshold_for_rejection_rate_errors():
    with pytest.raises(InvalidInputError, match="rate"):
        threshold_for_rejection_rate([1.0], 1.5)
    with pytest.raises(InvalidInputError, match="NaN"):
        threshold_for_rejection_rate([1.0, np.nan], 0.1)


@pytest.mark.parametrize(("max_error", "expected"), [(0.4, 0.5), (0.3, 0.6), (0.25, 0.6), (0.2, 0.9), (0.0, 0.9)])
def test_threshold_for_selective_error_by_hand(max_error, expected):
    # keep score >= t: t=.5 -> 2/5 errors; t=.6 -> 1/4; t=.7 -> 1/3; t=.8 -> 1/2; t=.9 -> 0/1
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, False, True, True, False]
    assert threshold_for_selective_error(scores, correct, max_error) == expected


def test_threshold_for_selective_error_unreachable_is_inf():
    assert threshold_for_selective_error([0.3, 0.2], [False, False], 0.1) == np.inf
    with pytest.raises(InvalidInputError, match="correct must have shape"):
        threshold_for_selective_error([0.3, 0.2], [True], 0.1)


# --- rejection rule ---------------------------------------------------------------------------------


def test_rule_reasons_and_precedence():
    rule = RejectionRule(kl_threshold=1.0, novelty_threshold=0.05)
    rejected, reasons = rule.apply(kl=[0.5, 5.0, 0.5, 5.0], novelty_p=[0.5, 0.5, 0.01, 0.01])
    np.testing.assert_array_equal(reasons, ["doubtful", "", "unseen", "unseen"])
    np.testing.assert_array_equal(rejected, [True, False, True, True])


def test_rule_with_one_or_no_active_threshold():
    kl, p = [0.5, 5.0], [0.01, 0.5]
    _, reasons = RejectionRule(kl_threshold=1.0).apply(kl=kl, novelty_p=p)
    np.testing.assert_array_equal(reasons, ["doubtful", ""])
    _, reasons = RejectionRule(novelty_threshold=0.05).apply(novelty_p=p)
    np.testing.assert_array_equal(reasons, ["unseen", ""])
    rejected, reasons = RejectionRule().apply(kl=kl)
    assert not rejected.any() and list(reasons) == ["", ""]


def test_rule_errors():
    with pytest.raises(InvalidInputError, match="novelty_p is required"):
        RejectionRule(kl_threshold=1.0, novelty_threshold=0.1).apply(kl=[1.0])
    with pytest.raises(InvalidInputError, match="novelty_p must be 1-D"):
        RejectionRule(kl_threshold=1.0).apply(kl=[1.0, 2.0], novelty_p=[0.1])
    with pytest.raises(ConfigError, match="kl_threshold"):
        RejectionRule(kl_threshold=-1.0)
    with pytest.raises(ConfigError, match="novelty_threshold"):
        RejectionRule(novelty_threshold="0.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        RejectionRule().kl_threshold = 2.0


def test_rule_roundtrips_through_json():
    rule = RejectionRule(kl_threshold=np.float32(5), novelty_threshold=None)
    state = json.loads(json.dumps(rule.to_dict()))
    assert state == {"kl_threshold": 5.0, "novelty_threshold": None}
    assert RejectionRule.from_dict(state) == rule
    with pytest.raises(ConfigError, match="unknown rejection rule keys"):
        RejectionRule.from_dict({"kl": 1.0})


def test_novelty_reference_knows_its_setup_and_builds_its_scorer_once():
    from regentree.rejection.novelty import NoveltyReference
    from regentree.scoring.config import ScoringConfig

    config = ScoringConfig()
    reference = NoveltyReference.under(config)
    reference.record("a", [1.0, 2.0, 3.0])
    reference.record("b", [5.0])
    assert tuple(reference.setup) == ScoringConfig.distortion_fields and reference.mismatch(config) == {}
    other = dataclasses.replace(config, decision="median")
    assert reference.mismatch(other) == {"decision": [config.decision, "median"]}
    with pytest.raises(ConfigError, match="decision was 'mean', is 'median'"):
        reference.check_applies(other)
    scorer = reference.scorer(["a", "b"])
    assert reference.scorer(["a", "b"]) is scorer and reference.scorer(["b", "a"]) is not scorer
    reference.record("a", [10.0, 20.0])
    rebuilt = reference.scorer(["a", "b"])
    np.testing.assert_array_equal(rebuilt.reference_[0], reference.distortions["a"])
    reference.drop("b")
    with pytest.raises(KeyError):
        reference.scorer(["a", "b"])
