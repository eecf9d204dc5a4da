"""benchmarks/unseen.py: the two-sided p-value against hand-computed values and the --quick run's tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common
import unseen


def test_two_sided_p_value_is_twice_the_smaller_tail():
    """Reference 1..9: a score of 1 has 9 references >= it and 1 <= it, so p = 2 * 2/10; 5 is central: p = 1."""
    reference = np.arange(1.0, 10.0)
    p = unseen.two_sided_p_values(reference, np.array([1.0, 5.0, 9.5, 0.0]))
    np.testing.assert_allclose(p, [0.4, 1.0, 0.2, 0.2])


def test_quick_run_compares_every_candidate_on_every_pair(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["unseen.py", "--quick"])
    unseen.main()
    result = json.loads((tmp_path / "unseen_quick.json").read_text())
    pairs = {row["pair"] for row in result["rows"]}
    assert pairs == {"digits 0-4 vs digits 5-9", "digits 5-9 vs digits 0-4", "digits 0-4 vs faint digits 5-9"}
    assert {row["candidate"] for row in result["rows"]} == set(unseen.CANDIDATES)
    for row in result["rows"]:
        assert 0.0 <= row["auroc"] <= 1.0 and 0.0 <= row["fpr95"] <= 1.0
        assert 0.0 <= row["known_rejected_p05"] <= 1.0 and 0.0 <= row["unseen_rejected_p05"] <= 1.0
    assert result["best_in_both"] in unseen.CANDIDATES
    assert result["hard_pair"] == "digits 5-9 vs digits 0-4"
