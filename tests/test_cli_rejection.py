"""End-to-end tests of `regentree calibrate`, `evaluate --unseen` and the rejection reasons of `classify`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from regentree import load_model
from regentree.cli import app
from regentree.data import load_digits_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(fitted_flat, tmp_path_factory):
    return fitted_flat.save(tmp_path_factory.mktemp("cli") / "model")


@pytest.fixture(scope="module")
def known_npz(tmp_path_factory):
    """Held-out digits of the model's four classes (0-3)."""
    test = load_digits_dataset("test")
    keep = np.isin(test.y, [0, 1, 2, 3])
    path = tmp_path_factory.mktemp("known") / "known.npz"
    np.savez(path, x=test.X[keep].reshape(-1, 8, 8), y=test.y[keep], class_names=np.array(test.class_names))
    return path


@pytest.fixture(scope="module")
def unseen_npz(tmp_path_factory):
    """Inverted digits: bright background, nothing like any class the model knows."""
    test = load_digits_dataset("test")
    path = tmp_path_factory.mktemp("unseen") / "inverted.npz"
    np.savez(path, x=(1.0 - test.X[:100]).reshape(-1, 8, 8), y=test.y[:100])
    return path


def run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_calibrate_writes_thresholds_into_the_model(model_dir, known_npz):
    result = run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.05", "--rule", "both", "-q", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report.pop("split") == "all" and report.pop("data") == str(known_npz)
    assert report["rule"] == "both" and report["rejection_rate"] <= 0.05
    model = load_model(model_dir)
    assert model.rejection_rule().kl_threshold == pytest.approx(report["kl_threshold"])
    assert model.rejection_rule().novelty_threshold == pytest.approx(report["novelty_threshold"])
    assert {k: v for k, v in model.calibration_report_.items() if k != "kl_sample"} == report
    assert len(model.calibration_report_["kl_sample"]) == report["n_calibration"]  # kept for evaluate's shift test


def test_calibrate_with_confidence_is_stricter_and_says_so(model_dir, known_npz):
    plain = json.loads(run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.2",
                           "-q", "--json").stdout)
    sure = run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.2", "--confidence", "0.9", "-q")
    assert sure.exit_code == 0, sure.output
    assert "with confidence 0.9 on new probes" in sure.output
    report = load_model(model_dir).calibration_report_
    assert report["confidence"] == 0.9 and plain["confidence"] is None
    assert report["kl_threshold"] < plain["kl_threshold"]  # room left for new probes to land above the bound
    bad = run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.2", "--confidence", "1.5", "-q")
    assert bad.exit_code == 2 and "confidence must be in (0, 1)" in bad.output


def test_calibrate_error_writes_nothing(model_dir, known_npz):
    before = (model_dir / "manifest.json").read_bytes()
    result = run("calibrate", model_dir, known_npz, "--split", "all", "--max-error", "0.0", "--max-rejection", "0.0", "-q")
    assert result.exit_code == 2
    assert "error:" in result.output and len(result.output.strip().splitlines()) <= 2
    no_target = run("calibrate", model_dir, known_npz, "--split", "all", "-q")
    assert no_target.exit_code == 2 and "--max-rejection" in no_target.output
    assert (model_dir / "manifest.json").read_bytes() == before


def test_evaluate_unseen_reports_detection_metrics(model_dir, known_npz, unseen_npz):
    assert run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.05", "--rule", "novelty", "-q").exit_code == 0
    result = run("evaluate", model_dir, known_npz, "--split", "all", "--unseen", unseen_npz, "--unseen-split", "all", "-q", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    unseen = report["unseen"]
    assert unseen["n_unseen"] == 100
    assert unseen["novelty"]["auroc"] > 0.9  # inverted digits distort far more than any real digit
    assert set(unseen["kl"]) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    assert unseen["rule"]["unseen_rejection_rate"] > 0.8
    assert unseen["rule"]["known_rejection_rate"] == pytest.approx(report["with_model_rule"]["rejection_rate"])
    assert report["calibrated"] and report["with_model_rule"]["novelty_threshold"] is not None
    assert 0.0 <= report["risk_coverage_kl"]["aurc"] <= 1.0
    assert report["risk_coverage_kl"]["accuracy_at_coverage_0.8"] >= report["accuracy_no_rejection"]


def test_evaluate_table_shows_rule_and_unseen_section(model_dir, known_npz, unseen_npz):
    assert run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.1", "-q").exit_code == 0
    result = run("evaluate", model_dir, known_npz, "--split", "all", "--unseen", unseen_npz, "-q")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "rejection rule:" in text and "calibrated on" in text
    assert "AURC" in text and "AUROC" in text and "FPR95" in text
    assert "of unseen ones" in text


def test_classify_shows_why_a_probe_was_rejected(model_dir, known_npz, unseen_npz):
    assert run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.05", "--rule", "novelty", "-q").exit_code == 0
    result = run("classify", model_dir, unseen_npz, "--json", "-q")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert sum(r["reason"] == "unseen" for r in records) > 0.8 * len(records)
    table = run("classify", model_dir, unseen_npz, "-q")
    assert "rejected (unseen)" in table.output
    assert "unseen if novelty p <" in " ".join(table.output.split())


def test_evaluate_reports_the_softmax_baseline_beside_the_model(model_dir, known_npz, unseen_npz, tmp_path):
    assert run("calibrate", model_dir, known_npz, "--split", "all", "--max-rejection", "0.1", "-q").exit_code == 0
    args = ("evaluate", model_dir, known_npz, "--split", "all", "--unseen", unseen_npz, "--baseline", known_npz,
            "--baseline-epochs", "60")
    result = run(*args, "-q", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    baseline = report["baseline"]
    assert baseline["kind"] == "softmax_baseline" and baseline["epochs"] == 60
    assert 0.5 < baseline["accuracy_no_rejection"] <= 1.0
    matched = baseline["at_rejection_rate_of"]["model"]
    assert abs(matched["rejection_rate"] - report["with_model_rule"]["rejection_rate"]) <= 1 / matched["n"]
    assert set(baseline["unseen_msp"]) == {"auroc", "aupr_in", "aupr_out", "fpr95"}
    figure = tmp_path / "with_baseline.png"
    text = " ".join(run(*args, "--plot", figure, "-q").output.split())
    assert "softmax baseline" in text and "rejecting as many as the model" in text
    assert figure.read_bytes().startswith(b"\x89PNG")  # the baseline's risk–coverage curve drawn beside the model's


def test_evaluate_plot_writes_a_png_and_bad_names_write_nothing(model_dir, known_npz, unseen_npz, tmp_path):
    figure = tmp_path / "figures" / "evaluation.png"
    result = run("evaluate", model_dir, known_npz, "--split", "all", "--unseen", unseen_npz, "--plot", figure, "-q")
    assert result.exit_code == 0, result.output
    assert figure.read_bytes().startswith(b"\x89PNG") and f"wrote {figure}" in " ".join(result.output.split())
    assert [p.name for p in figure.parent.iterdir()] == ["evaluation.png"]  # no temporary file left behind
    as_json = run("evaluate", model_dir, known_npz, "--split", "all", "--plot", tmp_path / "b.png", "-q", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["n_probes"] > 0  # stdout stays pure JSON
    bad = run("evaluate", model_dir, known_npz, "--split", "all", "--plot", tmp_path / "c.pdf", "-q")
    assert bad.exit_code == 2 and "--plot" in bad.output and not (tmp_path / "c.pdf").exists()


def test_classify_plot_draws_the_first_probes_distances_and_regenerations(model_dir, known_npz, tmp_path):
    figure = tmp_path / "probes.png"
    result = run("classify", model_dir, known_npz, "--plot", figure, "-q")
    assert result.exit_code == 0, result.output
    n = int(np.load(known_npz)["y"].size)
    assert f"wrote {figure} (the first 6 of {n} probes)" in " ".join(result.output.split())
    assert figure.read_bytes().startswith(b"\x89PNG") and [p.name for p in tmp_path.iterdir()] == ["probes.png"]
    bad = run("classify", model_dir, known_npz, "--plot", tmp_path / "probes.svg", "-q")
    assert bad.exit_code == 2 and "--plot" in bad.output and not (tmp_path / "probes.svg").exists()
