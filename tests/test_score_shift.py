"""regentree.rejection.score_shift: the KS shift test and its one warning line."""

from __future__ import annotations

import numpy as np
import pytest

from regentree.errors import InvalidInputError
from regentree.rejection.score_shift import score_shift, shift_warning


def test_same_distribution_is_not_shifted():
    rng = np.random.default_rng(0)
    report = score_shift(rng.normal(size=2000), rng.normal(size=2000), threshold=-1.645)
    assert not report["shifted"] and shift_warning(report) is None
    assert abs(report["calibration_rejected"] - 0.05) < 0.015 and abs(report["probes_rejected"] - 0.05) < 0.015


def test_a_shifted_distribution_warns_with_both_rejection_shares():
    rng = np.random.default_rng(0)
    report = score_shift(rng.normal(size=2000), rng.normal(-0.5, size=2000), threshold=-1.645)
    assert report["shifted"] and report["p_value"] < 1e-10
    line = shift_warning(report)
    assert line.startswith("warning: the KL scores of these probes differ from those of the 2000 calibration probes")
    assert "\n" not in line and f"{report['probes_rejected']:.1%}" in line


def test_ks_statistic_matches_a_hand_computed_value():
    """{0, 1} against {2, 3}: the empirical CDFs are 1 and 0 at 1.5, so the statistic is 1."""
    report = score_shift([0.0, 1.0], [2.0, 3.0])
    assert report["statistic"] == 1.0 and report["n_probes"] == 2 and "probes_rejected" not in report


@pytest.mark.parametrize("bad", [[], [np.nan, 1.0], [[1.0]]])
def test_bad_scores_are_one_line_errors(bad):
    with pytest.raises(InvalidInputError, match="must be a non-empty 1-D array without NaN"):
        score_shift([1.0, 2.0], bad)
