"""How alike two classes are, as a symmetric (M, M) distance matrix for the tree builders.

Every measure returns an ndarray of shape (M, M), symmetric, non-negative, 0 on the diagonal, where
smaller means more alike. Measures are looked up by name in `SIMILARITIES`; they take different inputs:

- ``"mean"``: ``mean_distance(X, y, n_classes)`` — Euclidean distance between class means of the images.
- ``"cross_distortion"``: ``cross_distortion_distance(D)`` — from the (M, M) matrix of mean distortions
  of each class's samples under each class's VAE (the estimator computes it with the scorer).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import cdist

from regentree.errors import ConfigError, InvalidInputError

__all__ = [
    "SIMILARITIES",
    "check_distance_matrix",
    "cross_distortion_distance",
    "get_similarity",
    "mean_distance",
]


def check_distance_matrix(distance: object, *, name: str = "distance", rtol: float = 1e-6) -> np.ndarray:
    """Validate a class distance matrix and return it as a symmetric float64 copy.

    Parameters
    ----------
    distance : array-like of shape (M, M)
        Finite, non-negative, symmetric (up to `rtol` of its largest entry), 0 on the diagonal; M >= 2.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray of shape (M, M)
        ``(distance + distance.T) / 2`` with an exact zero diagonal.
    """
    try:
        d = np.array(distance, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a numeric (M, M) array") from None
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise InvalidInputError(f"{name} must be a square (M, M) matrix, got shape {d.shape}")
    if d.shape[0] < 2:
        raise InvalidInputError(f"{name} must cover at least 2 classes, got {d.shape[0]}")
    if not np.all(np.isfinite(d)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    if np.any(d < 0):
        raise InvalidInputError(f"{name} has negative entries (min {d.min():.4g})")
    scale = max(float(np.abs(d).max()), 1.0)
    if not np.allclose(d, d.T, rtol=0.0, atol=rtol * scale):
        i, j = np.unravel_index(np.argmax(np.abs(d - d.T)), d.shape)
        raise InvalidInputError(f"{name} is not symmetric: [{i}, {j}]={d[i, j]:.6g} but [{j}, {i}]={d[j, i]:.6g}")
    if np.any(np.abs(np.diag(d)) > rtol * scale):
        raise InvalidInputError(f"{name} must be 0 on the diagonal")
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d


def mean_distance(X: object, y: object, n_classes: int) -> np.ndarray:
    """Euclidean distance between the class means of `X`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite features (flattened images).
    y : array-like of shape (n_samples,)
        Integer class indices in ``0..n_classes-1``; every class needs at least one sample.
    n_classes : int
        M, at least 2.

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise InvalidInputError(f"n_classes must be an int >= 2, got {n_classes!r}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise InvalidInputError(f"X must have shape (n_samples, n_features), got {X.shape}")
    if y.shape != (X.shape[0],):
        raise InvalidInputError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise InvalidInputError("X contains NaN or inf")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes):
        raise InvalidInputError(f"y must hold integer class indices in 0..{n_classes - 1}")
    counts = np.bincount(y.astype(np.int64), minlength=n_classes) if y.size else np.zeros(n_classes, int)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise InvalidInputError(f"class {int(missing[0])} has no sample in y")
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, y, X)
    means = sums / counts[:, None]
    d = cdist(means, means)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d


def cross_distortion_distance(D: object) -> np.ndarray:
    """Symmetrised excess distortion between classes.

    ``D[i, j]`` is the mean distortion (re-generation distance) of class i's samples under class j's VAE.
    ``D[i, j] - D[i, i]`` is how much worse class i fits a foreign VAE than its own; the distance averages
    it both ways::

        d(i, j) = max(0, (D[i, j] - D[i, i] + D[j, i] - D[j, j]) / 2)

    Clipping at 0 treats a pair whose VAEs fit each other's samples at least as well as their own as
    maximally alike. The result is a dissimilarity, not a metric (no triangle inequality), which suits the
    ``average``/``complete``/``single``/``balanced`` builders; ``ward`` assumes Euclidean input.

    Parameters
    ----------
    D : array-like of shape (M, M)
        Finite mean distortions, M >= 2; not necessarily symmetric.

    Returns
    -------
    ndarray of shape (M, M)
    """
    try:
        D = np.array(D, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError("cross-distortion matrix must be a numeric (M, M) array") from None
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise InvalidInputError(f"cross-distortion matrix must be square (M, M), got shape {D.shape}")
    if D.shape[0] < 2:
        raise InvalidInputError(f"cross-distortion matrix must cover at least 2 classes, got {D.shape[0]}")
    if not np.all(np.isfinite(D)):
        raise InvalidInputError("cross-distortion matrix contains NaN or inf")
    excess = D - np.diag(D)[:, None]
    d = np.clip((excess + excess.T) / 2.0, 0.0, None)
    np.fill_diagonal(d, 0.0)
    return d


SIMILARITIES: dict[str, Callable[..., np.ndarray]] = {
    "mean": mean_distance,
    "cross_distortion": cross_distortion_distance,
}


def get_similarity(name: str) -> Callable[..., np.ndarray]:
    """The measure registered under `name` in `SIMILARITIES`; `ConfigError` for an unknown name."""
    try:
        return SIMILARITIES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown similarity {name!r}; known: {sorted(SIMILARITIES)}") from None
