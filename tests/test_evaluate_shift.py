"""`evaluate` warns when the probes' KL scores differ from the calibration scores stored with the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from regentree import load_model
from regentree.cli import app
from regentree.data import load_digits_dataset
from regentree.evaluation.evaluate import calibration_shift
from regentree.rejection.score_shift import score_sample

runner = CliRunner()


def _npz(path, X, y, class_names):
    np.savez(path, x=X.reshape(-1, 8, 8), y=y, class_names=np.array(class_names))
    return path


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    """Held-out digits 0-3 in two halves (calibration, same-data probes) and the second half blurred by noise."""
    test = load_digits_dataset("test")
    keep = np.flatnonzero(np.isin(test.y, [0, 1, 2, 3]))
    first, second = keep[::2], keep[1::2]
    noisy = np.clip(test.X[second] + np.random.default_rng(0).normal(0, 0.35, test.X[second].shape), 0, 1)
    folder = tmp_path_factory.mktemp("probes")
    return {"calibration": _npz(folder / "cal.npz", test.X[first], test.y[first], test.class_names),
            "same": _npz(folder / "same.npz", test.X[second], test.y[second], test.class_names),
            "shifted": _npz(folder / "noisy.npz", noisy, test.y[second], test.class_names)}


@pytest.fixture(scope="module")
def calibrated_dir(fitted_flat, probe_files, tmp_path_factory):
    path = fitted_flat.save(tmp_path_factory.mktemp("shift") / "model")
    result = runner.invoke(app, ["calibrate", str(path), str(probe_files["calibration"]), "--split", "all",
                                 "--max-rejection", "0.1", "-q"])
    assert result.exit_code == 0, result.output
    return path


def evaluate(model_dir, data):
    result = runner.invoke(app, ["evaluate", str(model_dir), str(data), "--split", "all", "-q", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_held_out_probes_of_the_same_data_do_not_warn(calibrated_dir, probe_files):
    report, stderr = evaluate(calibrated_dir, probe_files["same"])
    assert report["score_shift"]["shifted"] is False and "warning" not in stderr
    assert "kl_sample" not in report["calibration"]


def test_noisy_probes_warn_once_and_say_so_in_the_json(calibrated_dir, probe_files):
    report, stderr = evaluate(calibrated_dir, probe_files["shifted"])
    shift = report["score_shift"]
    assert shift["shifted"] is True and shift["p_value"] < shift["alpha"]
    assert shift["probes_rejected"] > shift["calibration_rejected"]
    assert stderr.startswith("warning: the KL scores of these probes differ") and stderr.count("\n") == 1


def test_models_calibrated_without_a_stored_sample_report_no_shift(calibrated_dir):
    """Model folders calibrated before the sample was stored: no test, no warning, no error."""
    model = load_model(calibrated_dir)
    assert calibration_shift(model, np.array([1.0, 2.0])) is not None
    model.calibration_report_ = {k: v for k, v in model.calibration_report_.items() if k != "kl_sample"}
    assert calibration_shift(model, np.array([1.0, 2.0])) is None


def test_the_stored_sample_is_bounded_and_made_of_actual_scores():
    scores = np.random.default_rng(0).exponential(size=5000)
    sample = score_sample(scores, size=1000)
    assert len(sample) == 1000 and sample == sorted(sample) and set(sample) <= set(scores.tolist())
    assert sample[0] < np.quantile(scores, 0.001) and sample[-1] > np.quantile(scores, 0.999)
    assert score_sample([3.0, np.inf, 1.0]) == [1.0, 3.0, np.inf]
