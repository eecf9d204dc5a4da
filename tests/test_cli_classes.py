"""`regentree add-class` / `remove-class`: what they print, what they write, and that a kill changes nothing."""

from __future__ import annotations

import copy
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from regentree import load_model
from regentree.cli import app

runner = CliRunner()


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def model_dir(fitted_flat, tmp_path):
    fitted_flat.save(tmp_path / "model")
    return tmp_path / "model"


def test_add_class_from_a_labelled_data_set_trains_one_vae(model_dir):
    before = _hashes(model_dir)
    result = runner.invoke(app, ["add-class", str(model_dir), "digits", "--from-class", "4", "--label", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "trained VAEs: class_4" in result.stdout and "dropped VAEs: (none)" in result.stdout
    after = _hashes(model_dir)
    assert {k: v for k, v in after.items() if k.startswith("vaes/") and k in before} == {
        k: v for k, v in before.items() if k.startswith("vaes/")
    }
    assert list(load_model(model_dir).classes_) == ["0", "1", "2", "3", "4"]


def test_add_class_from_a_folder_of_images_then_remove_it(model_dir, digits_train, tmp_path):
    images = tmp_path / "fives"
    images.mkdir()
    for i, x in enumerate(digits_train.X[digits_train.y == 5][:20]):
        Image.fromarray((x.reshape(8, 8) * 255).astype(np.uint8)).save(images / f"{i}.png")
    result = runner.invoke(app, ["add-class", str(model_dir), str(images), "--label", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert '"trained": [\n    "class_4"\n  ]' in result.stdout
    assert load_model(model_dir).training_info_["class_4"]["n_samples"] == 20
    result = runner.invoke(app, ["remove-class", str(model_dir), "--label", "5"])
    assert result.exit_code == 0, result.output
    assert "dropped VAEs: class_4" in result.stdout and "trained VAEs: (none)" in result.stdout
    assert list(load_model(model_dir).classes_) == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["digits", "--from-class", "3", "--label", "3"], "class '3' already exists"),
        (["digits", "--from-class", "x", "--label", "x"], "unknown or no class names ['x']"),
        (["EMPTY", "--label", "7"], "no PNG/JPEG images in this folder"),
        (["WIDE", "--label", "7"], "but the model expects images of shape (8, 8)"),
    ],
)
def test_add_class_errors_are_one_line_and_write_nothing(model_dir, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "wide.npy", np.zeros((10, 100), np.float32))
    args = [{"EMPTY": str(tmp_path / "empty"), "WIDE": str(tmp_path / "wide.npy")}.get(a, a) for a in args]
    before = _hashes(model_dir)
    result = runner.invoke(app, ["add-class", str(model_dir), *args, "-q"])
    assert result.exit_code == 2
    assert message in result.stderr.replace("\n", " ") and result.stderr.strip().count("\n") == 0
    assert _hashes(model_dir) == before and sorted(p.name for p in model_dir.parent.iterdir()) == ["empty", "model",
                                                                                                     "wide.npy"]


def test_remove_unknown_class_is_an_error(model_dir):
    before = _hashes(model_dir)
    result = runner.invoke(app, ["remove-class", str(model_dir), "--label", "9"])
    assert result.exit_code == 2 and "class '9' is not in the model" in result.stderr
    assert _hashes(model_dir) == before


def test_killed_add_class_leaves_the_previous_model(fitted_flat, tmp_path):
    model = copy.deepcopy(fitted_flat).set_params(epochs=100_000, patience=0)
    model.save(tmp_path / "model")
    before = _hashes(tmp_path / "model")
    process = subprocess.Popen(
        [sys.executable, "-m", "regentree", "add-class", str(tmp_path / "model"), "digits", "--from-class", "4",
         "--label", "4", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"},
    )
    try:
        line = process.stderr.readline()  # printed just before training starts
        assert "training class '4'" in line
        assert process.poll() is None
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert _hashes(tmp_path / "model") == before
    assert list(load_model(tmp_path / "model").classes_) == ["0", "1", "2", "3"]
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["model"]
