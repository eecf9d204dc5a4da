"""`fit` holds out a calibration split and sets the KL threshold for `rejection_target`; an explicit threshold wins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone

from regentree import FlatRegenClassifier, TreeRegenClassifier, load_model
from regentree.rejection.calibration import MAX_CALIBRATION_PROBES, calibration_split
from regentree.errors import ConfigError

from conftest import TINY


@pytest.fixture(scope="module")
def digits(digits_train):
    """All ten digit classes, labels as class names (1,437 training images: 144 held out for calibration)."""
    return digits_train.X, digits_train.labels


@pytest.fixture(scope="module")
def calibrated_flat(digits):
    X, y = digits
    return FlatRegenClassifier(**TINY).fit(X, y, image_shape=(8, 8))


def test_calibration_split_is_stratified_seeded_and_capped() -> None:
    y = np.repeat(np.arange(4), [100, 50, 30, 12])
    train, held = calibration_split(y, seed=3, min_train=10)
    assert np.array_equal(np.sort(np.r_[train, held]), np.arange(len(y)))
    assert np.bincount(y[held], minlength=4).tolist() == [10, 5, 3, 1]  # 10 % of each class (19 in all)
    again, held_again = calibration_split(y, seed=3, min_train=10)
    assert np.array_equal(held, held_again) and not np.array_equal(held, calibration_split(y, 4, 10)[1])
    small = calibration_split(np.repeat(np.arange(2), 11), seed=0, min_train=10)[1]
    assert len(small) == 2  # each class keeps the 10 images it needs
    many = np.repeat(np.arange(1000), 30)  # 30,000 images of 1,000 classes: 10 % would be 3,000
    held_many = calibration_split(many, seed=0, min_train=10)[1]
    assert len(held_many) == MAX_CALIBRATION_PROBES and set(np.bincount(many[held_many])) == {2}


def test_default_fit_rejects_about_the_target_share_of_unseen_digits(calibrated_flat, digits_test) -> None:
    report = calibrated_flat.calibration_report_
    assert report["source"] == "fit" and report["n_calibration"] == 144 and report["max_rejection"] == 0.05
    assert sum(t["n_samples"] for t in calibrated_flat.training_info_.values()) == 1437 - 144
    assert 4 / 144 < report["rejection_rate"] <= 0.05  # floor(0.05 * 144) = 7 probes below the threshold
    rejected = calibrated_flat.predict_with_rejection(digits_test.X).rejected.mean()
    # the threshold is a 5 % quantile of 144 probes, checked on 360 others: the realized rate has a standard
    # deviation of about sqrt(p (1 - p) (1/144 + 1/360)) = 2.1 points; 3 of them bound it
    tolerance = 3 * math.sqrt(0.05 * 0.95 * (1 / 144 + 1 / 360))
    assert abs(rejected - 0.05) <= tolerance
    fixed = calibrated_flat.predict_with_rejection(digits_test.X).kl < 5.0
    assert fixed.mean() > 0.5  # the paper's KL 5 would throw most of these tiny model's probes away


def test_an_explicit_kl_threshold_wins_and_fit_then_holds_nothing_out(calibrated_flat, digits) -> None:
    model = calibrated_flat
    override = clone(model)
    override.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    override.set_params(kl_threshold=2.0)  # set after fit: the calibrated threshold no longer applies
    assert override.rejection_rule().kl_threshold == 2.0 and override.rejection_origin() == {"how": "fixed"}
    override.set_params(kl_threshold="auto", novelty_threshold=0.01)  # novelty stays on top of the calibrated KL
    assert override.rejection_rule().kl_threshold == model.calibration_report_["kl_threshold"]
    assert override.rejection_rule().novelty_threshold == 0.01
    X, y = digits
    keep = np.isin(y, ["0", "1"])
    refit = override.set_params(kl_threshold=3.0, novelty_threshold=None).fit(X[keep], y[keep], image_shape=(8, 8))
    assert not hasattr(refit, "calibrated_rule_") and refit.rejection_rule().kl_threshold == 3.0
    assert sum(t["n_samples"] for t in refit.training_info_.values()) == int(keep.sum())


def test_no_target_is_the_papers_fixed_threshold() -> None:
    model = FlatRegenClassifier(rejection_target=None)
    assert not model.calibrates_at_fit() and model.rejection_rule().kl_threshold == 5.0
    with pytest.raises(ConfigError, match="rejection_target"):
        FlatRegenClassifier(rejection_target=1.5)._check_params()


def test_the_calibrated_rule_survives_save_and_load(calibrated_flat, tmp_path) -> None:
    loaded = load_model(calibrated_flat.save(tmp_path / "m"))
    assert loaded.rejection_rule() == calibrated_flat.rejection_rule()
    assert loaded.rejection_origin() == calibrated_flat.rejection_origin()
    assert loaded.rejection_origin()["source"] == "fit" and loaded.calibration_report_ == calibrated_flat.calibration_report_
    assert loaded.get_params()["kl_threshold"] == "auto" and loaded.get_params()["rejection_target"] == 0.05


def test_a_tree_calibrates_at_fit_alike(digits) -> None:
    """The tree's fit holds out what a flat fit on the same labels and seed holds out (`calibration_split`)."""
    X, y = digits
    keep = np.isin(y, ["0", "1", "2", "3"])
    tree = TreeRegenClassifier(**TINY).fit(X[keep], y[keep], image_shape=(8, 8))
    held = calibration_split(np.unique(y[keep], return_inverse=True)[1], seed=0, min_train=10)[1]
    assert tree.rejection_origin()["source"] == "fit" and tree.calibration_report_["n_calibration"] == len(held) == 58
    assert tree.rejection_rule().kl_threshold == tree.calibration_report_["kl_threshold"]
    assert sum(tree.training_info_[f"node_{leaf}"]["n_samples"] for leaf in tree.tree_.leaves) == int(keep.sum()) - 58
