"""run.json holds what differs from run to run, so the same seed gives the same manifest.json bytes."""

import json

import numpy as np
import pytest

from regentree import FlatRegenClassifier, load_model, save_model
from regentree.persistence.model_folder import MANIFEST
from regentree.persistence.run_record import RUN_FILE

from conftest import TINY


def _fit(digits_train):
    keep = np.isin(digits_train.y, [0, 1, 2])
    return FlatRegenClassifier(**{**TINY, "epochs": 3}, random_state=0).fit(digits_train.X[keep], digits_train.y[keep],
                                                                            image_shape=(8, 8))


def test_the_same_seed_gives_the_same_manifest_bytes(digits_train, tmp_path):
    first = save_model(_fit(digits_train), tmp_path / "first")
    second = save_model(_fit(digits_train), tmp_path / "second")
    assert (first / MANIFEST).read_bytes() == (second / MANIFEST).read_bytes()
    assert "seconds" not in (first / MANIFEST).read_text()
    run = json.loads((first / RUN_FILE).read_text())
    assert run["format"] == "regentree-run" and run["saved_at"]
    assert set(run["vaes"]) == {"base", "class_0", "class_1", "class_2"}  # few images per class: a base VAE too


def test_timings_come_back_from_run_json_and_a_folder_without_one_loads(fitted_flat, tmp_path):
    folder = save_model(fitted_flat, tmp_path / "model")
    loaded = load_model(folder)
    assert loaded.training_info_ == json.loads(json.dumps(fitted_flat.training_info_))
    assert loaded.summary()["training"]["seconds_sum"] == fitted_flat.summary()["training"]["seconds_sum"]
    (folder / RUN_FILE).unlink()
    without = load_model(folder)
    assert all("seconds" not in info for info in without.training_info_.values())
    assert without.summary()["training"]["seconds_sum"] == 0


def test_an_unreadable_run_record_is_ignored_with_a_warning(fitted_flat, tmp_path):
    folder = save_model(fitted_flat, tmp_path / "model")
    (folder / RUN_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="not a regentree run record"):
        loaded = load_model(folder)
    assert loaded.classes_.tolist() == fitted_flat.classes_.tolist()
