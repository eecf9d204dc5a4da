"""Class-conditional (Mondrian) split-conformal p-values, prediction sets and their coverage; torch-free.

For class c with calibration scores cal_c (the distortion of held-out class-c images under class c's
VAE), a probe's p-value is ``p_c(x) = (1 + #{i : cal_c[i] >= s(x, c)}) / (n_c + 1)``. If the probe
and cal_c are exchangeable, ``P(p_y(x) <= alpha | y = c) <= alpha`` for every class, so the set
``{c : p_c(x) > 1 - confidence}`` holds the true class with probability at least
``1 - floor((1 - confidence)(n_c + 1)) / (n_c + 1) >= confidence``, for each class and so also marginally
(Vovk et al. 2005, "Algorithmic Learning in a Random World", ch. 4.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from regentree.errors import InvalidInputError

__all__ = ["check_confidence", "conformal_p_values", "coverage_report", "expected_coverage", "mondrian_p_values", "prediction_sets"]

_ROUNDING = 1e-12  # 1 - 0.9 is 0.09999999999999998 in floats; p-values are multiples of 1 / (n + 1)


def conformal_p_values(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{reference >= s}) / (n + 1)`` for each score s; `reference` must be sorted ascending."""
    n_at_least = reference.size - np.searchsorted(reference, scores, side="left")
    return (1.0 + n_at_least) / (1.0 + reference.size)


def _calibration(calibration: Sequence, n_classes: int) -> list[np.ndarray]:
    """The calibration scores as sorted finite 1-D arrays, one per class; a one-line error otherwise."""
    if len(calibration) != n_classes:
        raise InvalidInputError(f"calibration holds {len(calibration)} classes, the scores {n_classes}")
    arrays = []
    for c, values in enumerate(calibration):
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"calibration scores of class {c} must be a non-empty finite 1-D array")
        arrays.append(np.sort(arr))
    return arrays


def mondrian_p_values(calibration: Sequence, scores) -> np.ndarray:
    """Per probe and class the conformal p-value of score ``scores[i, c]`` against class c's calibration scores.

    `calibration` holds one 1-D array per class, `scores` is (n_probes, n_classes), lower = more typical.
    Returns (n_probes, n_classes) p-values in (0, 1].
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise InvalidInputError(f"scores must be (n_probes, n_classes), got shape {scores.shape}")
    if np.any(np.isnan(scores)):
        raise InvalidInputError("scores contain NaN: every probe needs a score under every class")
    reference = _calibration(calibration, scores.shape[1])
    return np.stack([conformal_p_values(reference[c], scores[:, c]) for c in range(scores.shape[1])], axis=1)


def check_confidence(confidence: float) -> float:
    """`confidence` as a float in (0, 1); a one-line `InvalidInputError` otherwise."""
    if not 0.0 < float(confidence) < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
    return float(confidence)


def prediction_sets(p_values, confidence: float) -> np.ndarray:
    """Boolean (n_probes, n_classes) membership: class c is in a probe's set when its p-value exceeds 1 - confidence."""
    alpha = 1.0 - check_confidence(confidence)
    return np.asarray(p_values, dtype=float) > alpha + _ROUNDING  # p = alpha exactly (e.g. 2/20 at 0.9) is out


def expected_coverage(n_calibration: int, confidence: float) -> float:
    """Exact coverage of one class's sets for continuous scores and `n_calibration` calibration scores."""
    alpha = 1.0 - check_confidence(confidence)
    return 1.0 - np.floor(alpha * (n_calibration + 1) + _ROUNDING) / (n_calibration + 1)


def coverage_report(sets, y_index) -> dict:
    """Marginal and per-class coverage of prediction sets, the worst class, mean set size and share of empty sets.

    `sets` is the (n_probes, n_classes) membership of `prediction_sets`, `y_index` the true class indices.
    """
    sets = np.asarray(sets, dtype=bool)
    y_index = np.asarray(y_index, dtype=np.int64)
    if sets.ndim != 2 or y_index.shape != (len(sets),):
        raise InvalidInputError(f"sets {sets.shape} and y_index {y_index.shape} must be (n, M) and (n,)")
    if len(sets) == 0:
        raise InvalidInputError("coverage needs at least one probe")
    covered = sets[np.arange(len(sets)), y_index]
    per_class = {int(c): float(covered[y_index == c].mean()) for c in np.unique(y_index)}
    worst = min(per_class, key=per_class.get)
    return {
        "coverage": float(covered.mean()),
        "class_coverage": per_class,
        "worst_class": worst,
        "worst_class_coverage": per_class[worst],
        "mean_set_size": float(sets.sum(axis=1).mean()),
        "empty_share": float((sets.sum(axis=1) == 0).mean()),
    }
