"""Tests of regentree.evaluation.metrics on tiny arrays whose values are computed by hand in the comments."""

import math

import numpy as np
import pytest

from regentree.errors import InvalidInputError
from regentree.evaluation.metrics import (
    accuracy_at_coverage,
    accuracy_interval,
    augrc,
    aurc,
    confusion_matrix,
    e_aurc,
    ood_metrics,
    risk_at_coverage,
    risk_coverage_curve,
    selective_report,
    threshold_table,
)

# six probes: correct = [T, T, F, T, F, T] (4 correct)
Y_TRUE = [0, 1, 2, 1, 0, 2]
Y_PRED = [0, 1, 1, 1, 2, 2]
KL = [5.0, 0.5, 12.0, 3.0, 8.0, 20.0]


# --- selective accuracy (paper eq. 5) ---------------------------------------------------------------


def test_selective_report_by_hand():
    # rejected: probes 2, 3, 4 -> kept 0, 1, 5 (all correct) -> Acc = 3/3
    # correct and rejected: probe 3 -> P_miss = 1/6
    report = selective_report(Y_TRUE, Y_PRED, [False, False, True, True, True, False])
    assert report["accuracy"] == 1.0
    assert report["p_miss"] == pytest.approx(1 / 6)
    assert report["rejection_rate"] == 0.5
    assert report["coverage"] == 0.5
    assert report["accuracy_no_rejection"] == pytest.approx(4 / 6)
    assert (report["n"], report["n_kept"], report["n_rejected"]) == (6, 3, 3)
    assert (report["n_correct"], report["n_correct_kept"], report["n_correct_rejected"]) == (4, 3, 1)


def test_selective_report_when_everything_is_rejected():
    report = selective_report(Y_TRUE, Y_PRED, np.ones(6, dtype=bool))
    assert math.isnan(report["accuracy"])
    assert report["p_miss"] == pytest.approx(4 / 6)
    assert report["coverage"] == 0.0 and report["rejection_rate"] == 1.0


def test_selective_report_checks_lengths():
    with pytest.raises(InvalidInputError, match="differ in length"):
        selective_report([0, 1], [0, 1, 1], [False, False])


def test_threshold_table_by_hand():
    # thr 0: nothing rejected -> Acc 4/6, P_miss 0
    # thr 4: reject kl < 4 = probes 1, 3 (both correct) -> kept 0, 2, 4, 5 = [T, F, F, T] -> Acc 1/2, P_miss 2/6
    # thr 10: reject probes 0, 1, 3, 4 -> kept 2, 5 = [F, T] -> Acc 1/2, P_miss 3/6
    rows = threshold_table(Y_TRUE, Y_PRED, KL, [0, 4, 10])
    assert [r["threshold"] for r in rows] == [0.0, 4.0, 10.0]
    np.testing.assert_allclose([r["accuracy"] for r in rows], [4 / 6, 0.5, 0.5])
    np.testing.assert_allclose([r["p_miss"] for r in rows], [0.0, 2 / 6, 3 / 6])
    np.testing.assert_allclose([r["rejection_rate"] for r in rows], [0.0, 2 / 6, 4 / 6])


# --- risk-coverage ------------------------------------------------------------------------------------

# sorted by confidence: 0.9 (T), 0.8 (F), 0.6 (T), 0.3 (T)
CORRECT = [True, False, True, True]
CONFIDENCE = [0.9, 0.8, 0.3, 0.6]


def test_risk_coverage_curve_by_hand():
    coverage, risk = risk_coverage_curve(CORRECT, CONFIDENCE)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0.0, 1 / 2, 1 / 3, 1 / 4])


def test_aurc_by_hand():
    # mean of (0, 1/2, 1/3, 1/4) = 13/48
    assert aurc(CORRECT, CONFIDENCE) == pytest.approx(13 / 48)
    assert aurc([True] * 4, CONFIDENCE) == 0.0
    # the error ranked last is the best ordering: (0, 0, 0, 1/4) / 4
    assert aurc(CORRECT, [0.9, 0.1, 0.8, 0.7]) == pytest.approx(1 / 16)


def test_ties_are_averaged_over_orderings():
    # both probes tied: expected cumulative errors 0.5, 1 -> risks 0.5, 0.5 whatever the input order
    np.testing.assert_allclose(risk_coverage_curve([True, False], [1.0, 1.0])[1], [0.5, 0.5])
    np.testing.assert_allclose(risk_coverage_curve([False, True], [1.0, 1.0])[1], [0.5, 0.5])
    # [0.9 (F)] then tie {0.5 (T), 0.5 (F), 0.5 (T)}: cum errors 1, 1 + 1/3, 1 + 2/3, 2
    _, risk = risk_coverage_curve([False, True, False, True], [0.9, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(risk, [1.0, (4 / 3) / 2, (5 / 3) / 3, 2 / 4])


@pytest.mark.parametrize(("coverage", "expected"), [(0.25, 1.0), (0.5, 0.5), (0.6, 2 / 3), (0.75, 2 / 3), (1.0, 0.75)])
def test_accuracy_at_coverage_by_hand(coverage, expected):
    assert accuracy_at_coverage(CORRECT, CONFIDENCE, coverage) == pytest.approx(expected)


def test_accuracy_at_coverage_range():
    with pytest.raises(InvalidInputError, match="coverage"):
        accuracy_at_coverage(CORRECT, CONFIDENCE, 0.0)


# --- OOD detection -------------------------------------------------------------------------------------


def test_ood_metrics_by_hand():
    known, unseen = [0.1, 0.4, 0.35, 0.8], [0.9, 0.5, 0.7]
    m = ood_metrics(known, unseen)
    # AUROC: unseen > known in 4 + 3 + 3 of 12 pairs
    assert m["auroc"] == pytest.approx(10 / 12)
    # ROC by descending score: .9 U (tpr 1/3, fpr 0), .8 K (1/3, 1/4), .7 U (2/3, 1/4), .5 U (1, 1/4)
    assert m["fpr95"] == pytest.approx(0.25)
    # PR (unseen positive), points (recall, precision): (0, 1) (1/3, 1) (1/3, 1/2) (2/3, 2/3) (1, 3/4) ...
    # trapezoids: 1/3 * 1 + 1/3 * (1/2 + 2/3) / 2 + 1/3 * (2/3 + 3/4) / 2 = 0.763889
    assert m["aupr_out"] == pytest.approx(1 / 3 + (1 / 2 + 2 / 3) / 6 + (2 / 3 + 3 / 4) / 6)
    # PR (known positive, score -s): (0, 1) ... (3/4, 1) (3/4, 3/4) (3/4, 3/5) (1, 2/3) (1, 4/7)
    # trapezoids: 3/4 * 1 + 1/4 * (3/5 + 2/3) / 2 = 0.908333
    assert m["aupr_in"] == pytest.approx(3 / 4 + (3 / 5 + 2 / 3) / 8)


def test_ood_metrics_perfect_and_reversed():
    perfect = ood_metrics([0.0, 0.1, 0.2], [0.5, 0.9])
    assert perfect == pytest.approx({"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0})
    reversed_ = ood_metrics([0.5, 0.9], [0.0, 0.1, 0.2])
    assert reversed_["auroc"] == 0.0
    assert reversed_["fpr95"] == 1.0


def test_ood_metrics_fpr95_uses_the_first_threshold_reaching_95_percent():
    # 20 unseen at 1..20, 4 known at 0.5, 1.5, 2.5, 3.5: tpr 19/20 is reached at score 2 (one known above)
    # -> known with score >= 2: 2.5 and 3.5 -> fpr 2/4
    m = ood_metrics([0.5, 1.5, 2.5, 3.5], np.arange(1.0, 21.0))
    assert m["fpr95"] == 0.5


# --- confusion matrix -------------------------------------------------------------------------------


def test_confusion_matrix_ignores_values_outside_the_classes():
    cm = confusion_matrix([0, 1, 1, 2, -1], [0, 1, 2, 2, 0], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    assert confusion_matrix([0], [0], 2).shape == (2, 2)


@pytest.mark.parametrize("n_correct, n, low, high", [
    (5, 10, 0.187086, 0.812914),  # textbook Clopper–Pearson values
    (0, 10, 0.0, 1 - 0.025 ** (1 / 10)),  # closed forms at the ends: (alpha/2)^(1/n)
    (10, 10, 0.025 ** (1 / 10), 1.0),
])
def test_accuracy_interval_matches_hand_computed_clopper_pearson(n_correct, n, low, high):
    assert accuracy_interval(n_correct, n) == pytest.approx((low, high), abs=1e-6)


def test_accuracy_interval_narrows_with_more_probes_and_rejects_nonsense():
    few, many = accuracy_interval(998, 1000), accuracy_interval(9980, 10000)
    assert few[0] < many[0] < 0.998 < many[1] < few[1]
    assert all(np.isnan(accuracy_interval(0, 0)))
    with pytest.raises(InvalidInputError, match="n_correct"):
        accuracy_interval(11, 10)
    with pytest.raises(InvalidInputError, match="level"):
        accuracy_interval(1, 10, level=95)


def test_selective_report_gives_the_interval_of_the_kept_probes():
    report = selective_report([0, 0, 0, 0, 1], [0, 0, 0, 1, 1], [False, False, False, False, True])
    assert report["accuracy"] == 0.75 and report["accuracy_ci95"] == pytest.approx(list(accuracy_interval(3, 4)))


# --- E-AURC, AUGRC, risk at coverage ---------------------------------------------------------------------


def test_e_aurc_by_hand():
    # AURC 13/48 minus the ideal ordering's (0, 0, 0, 1/4) / 4 = 3/48
    assert e_aurc(CORRECT, CONFIDENCE) == pytest.approx(10 / 48)
    assert e_aurc(CORRECT, [0.9, 0.1, 0.8, 0.7]) == pytest.approx(0.0)  # the error ranked last: ideal
    assert e_aurc([True] * 4, CONFIDENCE) == 0.0
    assert e_aurc([False] * 4, CONFIDENCE) == pytest.approx(0.0)  # every ordering is ideal


def test_augrc_by_hand():
    # errors among the k most confident: 0, 1, 1, 1 of n = 4 -> mean of (0, 1/4, 1/4, 1/4)
    assert augrc(CORRECT, CONFIDENCE) == pytest.approx(3 / 16)
    # the error ranked last: (0, 0, 0, 1/4) / 4
    assert augrc(CORRECT, [0.9, 0.1, 0.8, 0.7]) == pytest.approx(1 / 16)
    # ties are averaged like AURC's: cum errors 0.5, 1 -> (0.25 + 0.5) / 2
    assert augrc([True, False], [1.0, 1.0]) == pytest.approx(0.375)


@pytest.mark.parametrize(("coverage", "expected"), [(0.25, 0.0), (0.5, 0.5), (0.75, 1 / 3), (1.0, 0.25)])
def test_risk_at_coverage_by_hand(coverage, expected):
    assert risk_at_coverage(CORRECT, CONFIDENCE, coverage) == pytest.approx(expected)
