"""Decision statistics of K re-generation distances (mean, median, likelihood); numpy only, no torch.

Kept apart from the torch scoring code so that the tree's routing rules can rank nodes without torch.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from scipy.special import logsumexp

from regentree.constraints import check_choice

__all__ = ["STATISTICS", "summarize"]


def _neg_log_mean_exp(d: np.ndarray) -> np.ndarray:
    """-log mean exp(-d) over the last axis, NaN entries left out (an all-NaN row gives NaN)."""
    valid = ~np.isnan(d)
    count = valid.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = -(logsumexp(np.where(valid, -d, -np.inf), axis=-1) - np.log(count))
    return np.where(count > 0, value, np.nan)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda d: d.mean(axis=-1),
    "median": lambda d: np.median(d, axis=-1),
    "likelihood": _neg_log_mean_exp,
}
"""Decision statistic name -> (..., K) distances to (...) scores, lower is better. "likelihood" is
-log mean exp(-d): with the "neg_log_weight" distance, the importance-weighted estimate of -log p(x)
under the VAE from the same K draws (a tighter bound than the mean, so a sharper class ranking)."""
_NAN_STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda d: np.nanmean(d, axis=-1),
    "median": lambda d: np.nanmedian(d, axis=-1),
    "likelihood": _neg_log_mean_exp,
}


def summarize(distances: np.ndarray, statistic: str = "mean") -> np.ndarray:
    """Per-VAE summary of the K distances: (n_probes, n_vaes, K) -> (n_probes, n_vaes).

    NaN entries (draws an adaptively scored probe did not need) are left out; an all-NaN row gives NaN.
    """
    check_choice("decision", statistic, STATISTICS)
    if not np.isnan(distances).any():
        return STATISTICS[statistic](distances)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _NAN_STATISTICS[statistic](distances)
