"""Probes are decided in chunks: peak memory stays flat in their number, decisions do not change (issue 26, item 5)."""

from __future__ import annotations

import copy
import tracemalloc
import numpy as np
import pytest

from regentree.estimators.outputs import Decision
from regentree.progress import ProgressEvent, within


def _same_decisions(a: Decision, b: Decision) -> None:
    """Same classes and draws; scores and KL equal up to float rounding (matrix products of other sizes)."""
    for name in ("class_index", "n_vae_evaluations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("kl", "winner_distances", "class_scores"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6, err_msg=name)
    for steps_a, steps_b in zip(a.trace, b.trace, strict=True):
        assert [(s["closest"], s["draws"]) for s in steps_a] == [(s["closest"], s["draws"]) for s in steps_b]


@pytest.fixture()
def model(fitted_flat):
    """A copy of the tiny flat model whose scoring parameters a test may change."""
    return copy.deepcopy(fitted_flat)


@pytest.mark.parametrize("adaptive", [False, True])
def test_chunked_decisions_equal_whole_ones(model, digits_test, adaptive):
    model.set_params(adaptive=adaptive, memory_budget_mb=0.05)
    assert model._probes_per_chunk() < len(digits_test.X) // 4
    chunked = model.decide(digits_test.X)
    model.set_params(memory_budget_mb=1e6)
    assert model._probes_per_chunk() >= len(digits_test.X)
    _same_decisions(chunked, model.decide(digits_test.X))


def test_progress_counts_on_across_chunks(model, digits_test):
    model.set_params(memory_budget_mb=0.05)
    events = []
    model.decide(digits_test.X, progress=events.append)
    done = [e.done for e in events if e.stage == "scoring"]
    assert done == sorted(done) and done[-1] == len(digits_test.X)
    assert {e.total for e in events if e.stage == "scoring"} == {len(digits_test.X)}


def test_within_scales_a_chunks_counts_to_the_whole():
    seen = []
    within(seen.append, 20, 10, 50)(ProgressEvent("routing", 6, 30))  # 3 evaluations per probe
    assert seen == [ProgressEvent("routing", 66, 150)]


def _peak_bytes(model, X) -> int:
    """Peak bytes traced (numpy arrays and Python objects) while deciding probes `X`."""
    tracemalloc.start()
    try:
        model.decide(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_flat_in_the_number_of_probes(model, digits_test):
    """Twice the probes, under 1.3 times the peak (keeping all raw distances doubled it)."""
    model.set_params(n_regenerations=200, memory_budget_mb=1.0)
    n = model._probes_per_chunk()
    X = np.tile(digits_test.X, (-(-2 * n // len(digits_test.X)), 1))[: 2 * n]
    model.decide(X[:10])  # imports and caches outside the measurement
    assert _peak_bytes(model, X) < 1.3 * _peak_bytes(model, X[:n])
