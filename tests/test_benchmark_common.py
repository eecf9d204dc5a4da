"""benchmarks/_common.py: the one "load the saved model, else train (and keep) it" of every benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import load_or_train  # noqa: E402


def test_load_or_train_trains_and_keeps_then_loads(fitted_flat, tmp_path):
    folder, calls = tmp_path / "model", []

    def train():
        calls.append(1)
        return fitted_flat

    first = load_or_train([None, folder], train, keep=folder)
    assert first.model is fitted_flat and first.folder == folder and first.train_seconds is not None
    again = load_or_train(folder, train)
    assert len(calls) == 1 and again.folder == folder and again.train_seconds is None
    assert again.model.classes_.tolist() == fitted_flat.classes_.tolist()
    X = np.random.default_rng(0).random((3, fitted_flat.n_features_in_), dtype=np.float32)
    np.testing.assert_array_equal(again.model.predict(X), fitted_flat.predict(X))


def test_load_or_train_trains_when_the_saved_model_is_refused_and_needs_one_without_train(fitted_flat, tmp_path):
    folder = tmp_path / "model"
    fitted_flat.save(folder)
    refused = load_or_train(folder, lambda: fitted_flat, accept=lambda model: False)
    assert refused.folder is None and refused.train_seconds is not None
    with pytest.raises(SystemExit, match="run the training first"):
        load_or_train(tmp_path / "absent", missing="run the training first")
    with pytest.raises(SystemExit, match="no saved model in .*absent"):
        load_or_train([tmp_path / "absent"])
