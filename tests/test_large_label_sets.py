"""benchmarks/large_label_sets.py --quick runs end to end and reports every metric in range."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture
def script(tmp_path, monkeypatch):
    """The benchmark module with its results folder redirected to a temporary one."""
    import _common
    import large_label_sets

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(large_label_sets, "RESULTS", tmp_path)
    return large_label_sets


def test_quick_run_writes_every_row_with_metrics_in_range(script, tmp_path):
    import glyphs

    fonts = all(Path(f).is_file() for f in glyphs.TRAIN_FONTS + glyphs.TEST_FONTS)
    rows = ["digits_10", "glyphs_quick"] if fonts else ["digits_10"]
    path = script.main(["--quick", "--rows", *rows])
    record = json.loads(path.read_text())
    assert record["rows"] == rows and {"command", "date", "machine", "cpu_count"} <= set(record)
    assert (tmp_path / "large_label_sets_quick.png").stat().st_size > 0
    for row in rows:
        fractions = [f"{row}_{kind}_{metric}" for kind in ("flat", "tree", *script.TREE_VARIANTS, "mlp")
                     for metric in ("accuracy", "aurc", "accuracy_at_coverage_80", "accuracy_at_coverage_90",
                                    "accuracy_at_coverage_95")] + [f"{row}_knn1_accuracy"]
        assert all(0.0 <= record[key] <= 1.0 for key in fractions)
        m = record[f"{row}_n_classes"]
        assert record[f"{row}_flat_vae_evaluations_mean"] == m
        assert 1 <= record[f"{row}_tree_vae_evaluations_max"] <= 2 * record[f"{row}_ceil_log2_m"]
        gates = [record[f"{row}_{kind}_kl_gate"] for kind in script.TREE_VARIANTS if "gated" in kind]
        assert np.all(np.diff(gates, axis=0) >= 0) and np.all(np.asarray(gates) >= 0)  # quantiles, rising shares
        positive = ("flat_probes_per_s", "tree_probes_per_s", "flat_training_seconds", "tree_training_seconds",
                    "flat_training_peak_rss_mb", "tree_training_peak_rss_mb", "scoring_peak_rss_mb")
        assert all(record[f"{row}_{key}"] > 0 for key in positive)
        assert record[f"{row}_command"].startswith("python ") and record[f"{row}_date"]


def test_rows_are_merged_one_at_a_time(script):
    script.main(["--quick", "--rows", "digits_10", "--n-test", "20"])
    record = json.loads(script.main(["--quick", "--rows", "digits_10", "--n-test", "30"]).read_text())
    assert record["rows"] == ["digits_10"] and record["digits_10_n_test"] == 30


def test_unknown_row_is_a_one_line_usage_error(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--quick", "--rows", "emnist47_20"])
    assert exit_info.value.code == 2 and "unknown ['emnist47_20']" in capsys.readouterr().err
