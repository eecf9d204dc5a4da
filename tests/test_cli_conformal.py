"""`classify --set` and `evaluate --set` (conformal sets and their coverage) and the selective metrics of `evaluate --json`."""

import json

import numpy as np
import pytest
from conftest import TINY
from typer.testing import CliRunner

from regentree.data.validation import class_indices
from regentree.cli import app
from regentree.rejection.conformal import coverage_report
from regentree.data import load_digits_dataset
from regentree.persistence.model_folder import load_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    config = tmp_path_factory.mktemp("cfg") / "tiny.json"
    config.write_text(json.dumps({**TINY, "hidden_dims": list(TINY["hidden_dims"])}))
    out = tmp_path_factory.mktemp("models") / "digits"
    result = runner.invoke(app, ["train", "digits", "--out", str(out), "--config", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def test_classify_set_gives_each_probe_its_set(model_dir, digits_test, tmp_path):
    np.save(tmp_path / "probes.npy", digits_test.X[:5].reshape(-1, 8, 8))
    result = runner.invoke(app, ["classify", str(model_dir), str(tmp_path / "probes.npy"), "--set", "0.9", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    model = load_model(model_dir)
    expected = model.predict_set(digits_test.X[:5], 0.9)
    names = [str(c) for c in model.classes_]
    assert [r["set"] for r in records] == [[names[c] for c in np.flatnonzero(row)] for row in expected]
    table = runner.invoke(app, ["classify", str(model_dir), str(tmp_path / "probes.npy"), "--set", "0.9", "--quiet"])
    assert table.exit_code == 0 and "set" in table.stdout and "{" in table.stdout


def test_evaluate_set_reports_coverage_and_set_size(model_dir):
    result = runner.invoke(app, ["evaluate", str(model_dir), "digits", "--set", "0.9", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    full = json.loads(result.stdout)
    report = full["conformal_sets"]
    rc = full["risk_coverage_kl"]  # the selective metrics beside AURC
    assert 0.0 <= rc["e_aurc"] <= rc["aurc"] and 0.0 <= rc["augrc"] <= rc["aurc"]
    assert rc["risk_at_coverage_0.8"] == pytest.approx(1 - rc["accuracy_at_coverage_0.8"])
    model, test = load_model(model_dir), load_digits_dataset("test", seed=0)
    expected = coverage_report(model.predict_set(test.X, 0.9), class_indices(model.classes_, test.labels))
    assert report["coverage"] == pytest.approx(expected["coverage"])
    assert report["worst_class_coverage"] == pytest.approx(expected["worst_class_coverage"])
    assert report["mean_set_size"] == pytest.approx(expected["mean_set_size"])
    assert report["confidence"] == 0.9 and report["calibration"] == "novelty references"
    text = runner.invoke(app, ["evaluate", str(model_dir), "digits", "--set", "0.9", "--quiet", "--limit", "40"])
    assert text.exit_code == 0 and "conformal sets at 90%" in text.stdout


@pytest.mark.parametrize("command", ["classify", "evaluate"])
def test_a_set_level_outside_zero_one_fails_in_one_line(model_dir, command):
    args = [command, str(model_dir)] + (["digits"] if command == "evaluate" else []) + ["--set", "1.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "--set" in result.stderr and result.stderr.count("\n") == 1
