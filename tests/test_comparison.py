"""The comparison's model facts come from the estimator's own `summary()`; batched decisions join like one call."""

from __future__ import annotations

import numpy as np

from regentree.evaluation.comparison import model_summary, timed_side_by_side


def test_model_summary_is_a_slice_of_the_estimator_summary(fitted_flat) -> None:
    summary = fitted_flat.summary()
    facts = model_summary(fitted_flat)
    assert facts == {"kind": summary["kind"], "n_classes": summary["n_classes"], "n_vaes": summary["n_vaes"],
                     "training_seconds": summary["training"]["seconds_sum"],
                     "n_regenerations": summary["scoring"]["n_regenerations"]}


def test_side_by_side_batches_join_into_the_decision_of_one_call(fitted_flat, digits_test) -> None:
    X = digits_test.X[:7]
    decisions, seconds = timed_side_by_side({"flat": fitted_flat}, X, batch_size=3)
    whole = fitted_flat.decide(X)
    assert np.array_equal(decisions["flat"].class_index, whole.class_index)
    assert decisions["flat"].kl.shape == (7,) and seconds["flat"] > 0
