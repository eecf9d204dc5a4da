"""The paper benchmarks and the tabular benchmark run end to end at a smoke size, so they never rot.

Each table of `benchmarks/paper_tables.py` runs with tiny settings (20 images per class, one epoch, 100
probes, K=8) into a temporary models/results folder; the figures are then rendered from what the tables
saved. Numbers are not checked against the paper here (that is the benchmarks' job), only that every
table produces its keys with values in range. `benchmarks/tabular.py --quick` needs no shared data.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
needs_paper_data = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fashion_mnist").is_dir(),
    reason="needs ../shared/data/{mnist,fashion_mnist}")
sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="module")
def benchmark_modules(tmp_path_factory):
    """paper_tables and paper_figures with models, results and figures redirected to a temporary folder."""
    import _experiments
    import paper_figures
    import paper_tables

    root = tmp_path_factory.mktemp("bench")
    saved = (_experiments.MODELS, _experiments.ROOT, paper_tables.FIGURE_DATA, paper_figures.FIGURE_DATA)
    _experiments.MODELS, _experiments.ROOT = root / "models", root
    paper_tables.FIGURE_DATA = paper_figures.FIGURE_DATA = root / "figure_data"
    smoke = _experiments.Settings("smoke", per_class=20, epochs=1, limited_epochs=1, n_test=100, n_regenerations=8,
                                  n_unlabelled=50, common_vae_epochs=1, hidden_dims=(16,))
    yield paper_tables, paper_figures, smoke
    _experiments.MODELS, _experiments.ROOT, paper_tables.FIGURE_DATA, paper_figures.FIGURE_DATA = saved


@needs_paper_data
@pytest.mark.parametrize("table", ["I", "II", "III", "III-base", "IV", "V", "VI"])
def test_paper_table_runs_and_reports_fractions(benchmark_modules, table):
    paper_tables, _, smoke = benchmark_modules
    result, rows, columns = paper_tables.TABLES[table](smoke)
    assert rows and all(set(row) <= set(columns) for row in rows)
    fractions = {k: v for k, v in result.items()
                 if k.startswith(("acc_", "lik_acc_", "error_", "rejected_", "pmiss_")) and isinstance(v, float)}
    assert fractions, f"table {table} reported no accuracy, error or rejection"
    assert all(np.isnan(v) or 0.0 <= v <= 1.0 for v in fractions.values())
    if table in ("I", "III", "III-base"):
        assert any(k.startswith("lik_acc_") for k in result), "the likelihood rule's columns are missing"


@needs_paper_data
def test_paper_figures_render_from_the_saved_table_data(benchmark_modules):
    paper_tables, paper_figures, smoke = benchmark_modules
    for table in ("I", "III"):  # the tables that save figure data (cached models: no new training)
        paper_tables.TABLES[table](smoke)
    figures = paper_figures.render(paper_figures.figure_data())
    assert {"fig3_kl_distributions", "fig4_regenerations", "fig5_decoder_filters", "tree_mnist",
            "tree_fashion"} <= set(figures)


@pytest.fixture
def tabular(tmp_path, monkeypatch):
    """benchmarks/tabular.py with its results folder redirected to a temporary one."""
    import _common
    import tabular

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    return tabular


def test_tabular_quick_run_reports_every_method_with_metrics_in_range(tabular):
    record = json.loads(tabular.main(["--quick"]).read_text())
    assert {"command", "date", "machine", "cpu_count"} <= set(record) and record["mode"] == "quick"
    expected = set(tabular.methods(0, tabular.parse_args(["--quick"])))
    for name in record["datasets"]:
        ranked = record[f"{name}_methods_by_accuracy"]
        assert set(ranked) == expected and record[f"{name}_available"]
        accuracies = [record[f"{name}_{method}_accuracy_mean"] for method in ranked]
        assert accuracies == sorted(accuracies, reverse=True)
        for method in ranked:
            fractions = [record[f"{name}_{method}_{metric}_mean"] for metric in tabular.METRICS[:3]]
            assert all(0.0 <= value <= 1.0 for value in fractions)
            assert all(record[f"{name}_{method}_{metric}_mean"] > 0 for metric in ("fit_seconds", "predict_seconds"))
        best_other = max(record[f"{name}_{m}_accuracy_mean"] for m in ranked if not m.startswith("regentree"))
        assert record[f"{name}_regentree_flat_minus_best_other_accuracy_pt"] == pytest.approx(
            100 * (record[f"{name}_regentree_flat_accuracy_mean"] - best_other))


def test_tabular_regentree_input_raw_hands_the_features_over_unscaled(tabular):
    for choice, steps in (("minmax-clip", 2), ("raw", 1)):
        pipelines = tabular.methods(0, tabular.parse_args(["--quick", "--regentree-input", choice]))
        assert len(pipelines["regentree_flat"]) == len(pipelines["regentree_tree"]) == steps
    record = json.loads(tabular.main(["--quick", "--regentree-input", "raw", "--datasets", "iris"]).read_text())
    assert 0.0 <= record["iris_regentree_flat_accuracy_mean"] <= 1.0  # the Gaussian decoder takes raw features


def test_tabular_covtype_never_downloads(tabular, monkeypatch):
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise OSError("Data not found and `download_if_missing` is False")

    monkeypatch.setattr(tabular.datasets, "fetch_covtype", offline)
    out = tabular.run_dataset("covtype", tabular.parse_args(["--quick"]))
    assert calls and all(call["download_if_missing"] is False for call in calls)
    assert out["covtype_available"] is False and out["covtype_reason"]


@pytest.mark.skipif(not (SHARED_DATA / "emnist_bymerge").is_dir(), reason="needs ../shared/data/emnist_bymerge")
def test_tree_efficiency_quick_run_compares_level_and_previous_scoring_with_flat(tmp_path, monkeypatch):
    import _common
    import tree_scaling

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    tree_scaling.main(["--efficiency", "--quick", "--probes", "8", "--repeats", "1"])
    record = json.loads((tmp_path / "tree_efficiency_quick.json").read_text())
    assert record["mode"] == "quick" and [row["n_classes"] for row in record["rows"]] == [10, 47]
    for row in record["rows"]:
        assert row["level_decisions_equal_per_node"] is True and row["level_fields_off_previous"] == []
        for path in ("tree_level", "tree_previous"):
            share = row[f"{path.replace('_level', '')}_share_of_flat_eval_speed"]
            assert share == pytest.approx(row[f"{path}_evaluations_per_s"] / row["flat_evaluations_per_s"])
    assert record["target_met"] == all(
        row["tree_share_of_flat_eval_speed"] >= record["target_share"] for row in record["rows"])
