"""Fixtures shared by the test modules: tiny settings and a small fitted model on the embedded digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from regentree import FlatRegenClassifier
from regentree.data import load_digits_dataset

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# small enough to fit in about a second per model on 2 cores, big enough to classify digits well
TINY = dict(hidden_dims=(32,), latent_dim=4, epochs=15, batch_size=32, patience=0, n_regenerations=30)


@pytest.fixture(scope="session")
def digits_train():
    return load_digits_dataset("train", seed=0)


@pytest.fixture(scope="session")
def digits_test():
    return load_digits_dataset("test", seed=0)


@pytest.fixture(scope="session")
def fitted_flat(digits_train):
    """A tiny flat model on four digit classes (labels are the class names), all images trained, fixed KL rule.

    rejection_target=None keeps every training image in the VAEs and their novelty references (the tests of
    the rejection rules need those references whole); fit's calibration has its own tests.
    """
    keep = np.isin(digits_train.y, [0, 1, 2, 3])
    X, y = digits_train.X[keep], digits_train.labels[keep]
    return FlatRegenClassifier(**TINY, random_state=0, rejection_target=None).fit(X, y, image_shape=(8, 8))
