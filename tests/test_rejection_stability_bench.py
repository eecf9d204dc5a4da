"""benchmarks/rejection_stability.py: the split-stability statistics on synthetic scores and the --quick run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common
import rejection_stability


def test_the_held_threshold_keeps_its_bound_on_most_splits():
    """Exchangeable continuous scores: the 95 %-confidence threshold must keep the 5 % bound on about 95 % of
    the splits, the plain one on about half (its realized rate scatters around 5 % on either side)."""
    rng = np.random.default_rng(0)
    kl, correct = rng.normal(size=2000), rng.random(2000) > 0.1
    splits = [np.split(rng.permutation(2000), [1000]) for _ in range(200)]
    plain, held = rejection_stability.threshold_rows(kl, correct, splits)
    assert held["bound_holds_share"] >= 0.95 - 4 * np.sqrt(0.05 * 0.95 / 200)
    assert 0.2 <= plain["bound_holds_share"] <= 0.8
    assert held["realized_rejection"]["mean"] < plain["realized_rejection"]["mean"]
    assert abs(plain["realized_rejection"]["mean"] - 0.05) < 0.01


def test_quick_run_writes_every_table(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["rejection_stability.py", "--quick"])
    rejection_stability.main()
    result = json.loads((tmp_path / "rejection_stability_quick.json").read_text())
    assert result["n_splits"] >= 20 and len(result["thresholds"]) == 2
    for row in result["thresholds"]:
        assert 0.0 <= row["realized_rejection"]["min"] <= row["realized_rejection"]["max"] <= 1.0
        assert 0.0 <= row["bound_holds_share"] <= 1.0
    methods = [row["method"] for row in result["conformal_sets"]]
    assert methods[0] == "regentree class-conditional"
    assert result["conformal_sets"][0]["coverage"]["mean"] >= 0.9 - 0.05  # ~180 probes per half, 20 splits
    if importlib.util.find_spec("mapie") is None:
        assert result["mapie"].startswith("not installed") and len(methods) == 1
    else:
        assert methods[1:] == ["MAPIE LAC (softmax MLP)", "MAPIE APS (softmax MLP)"]
