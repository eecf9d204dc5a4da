"""Rejection thresholds on confidence scores and the rule that applies them (`RejectionRule`).

A threshold is chosen on a calibration set's scores for a rejection rate (optionally held on new probes
with a chosen confidence) or for a selective error; `RejectionRule` rejects "doubtful" probes by KL and
"unseen" ones by novelty p-value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from numbers import Real

import numpy as np
from scipy.stats import beta

from regentree.errors import ConfigError, InvalidInputError

__all__ = ["RejectionRule", "threshold_for_rejection_rate", "threshold_for_selective_error"]


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if np.any(np.isnan(arr)):
        raise InvalidInputError(f"{name} contains NaN")
    return arr


def _check_confidence(confidence: float | None) -> None:
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")


def threshold_for_rejection_rate(scores, rate: float, confidence: float | None = None) -> float:
    """Largest threshold that rejects at most `rate` of the calibration probes, or of new probes.

    A probe is rejected when ``score < threshold``; scores are "higher = more confident" (KL, novelty
    p-value). Calibrate on known-class probes to bound how many of them the rule throws away.

    Without `confidence` the bound holds on the calibration probes themselves, and new probes land
    near it, on either side. With it, the bound holds for new probes from the same distribution with
    probability `confidence` over the draw of the calibration set: the share of new scores below the
    k-th smallest of n calibration scores is Beta(k, n + 1 - k) distributed (continuous scores), so the
    threshold is the k-th smallest score for the largest k whose Beta CDF at `rate` is >= `confidence`.

    Parameters
    ----------
    scores : array-like of shape (n_probes,)
        Confidence scores of known-class calibration probes.
    rate : float in [0, 1]
        Largest fraction of them (or of new probes) that may be rejected.
    confidence : float in (0, 1), optional
        Probability that the rejection rate on new probes stays <= `rate`, e.g. 0.95.

    Returns
    -------
    threshold : float
        Without `confidence`, the ``floor(rate * n) + 1``-th smallest score (ties may reject fewer);
        ``np.inf`` when ``rate * n >= n``, i.e. rejecting everything is allowed. With it, the k-th
        smallest score above, or ``-np.inf`` (reject nothing) when n is too small for even k = 1.

    Raises
    ------
    InvalidInputError
        If `scores` is empty or holds NaN, `rate` is outside [0, 1] or `confidence` outside (0, 1).
    """
    arr = np.sort(_as_scores(scores))
    if not 0.0 <= rate <= 1.0:
        raise InvalidInputError(f"rate must be in [0, 1], got {rate}")
    _check_confidence(confidence)
    if confidence is None:
        k = int(np.floor(rate * arr.size + 1e-9))
        return float(arr[k]) if k < arr.size else float(np.inf)
    if rate >= 1.0:
        return float(np.inf)
    n = arr.size
    k = np.arange(1, n + 1)
    safe = np.flatnonzero(beta.cdf(rate, k, n + 1 - k) >= confidence)  # decreasing in k
    return float(arr[safe[-1]]) if safe.size else float(-np.inf)


def threshold_for_selective_error(scores, correct, max_error: float) -> float:
    """Smallest threshold (least rejection) whose error on the kept probes is at most `max_error`.

    A probe is kept when ``score >= threshold``. The candidates are the distinct score values; the
    error among kept probes is not monotone in the threshold, so the smallest candidate that meets the
    target is returned.

    Parameters
    ----------
    scores : array-like of shape (n_probes,)
        Confidence scores ("higher = more confident") of labelled calibration probes.
    correct : array-like of bool of shape (n_probes,)
        Whether each probe was classified correctly.
    max_error : float in [0, 1]
        Target error rate on the kept probes.

    Returns
    -------
    threshold : float
        A score value, or ``np.inf`` when no threshold keeping at least one probe reaches the target
        (the rule would then reject everything; callers should treat it as "target unreachable").

    Raises
    ------
    InvalidInputError
        If the shapes differ, `scores` holds NaN, or `max_error` is outside [0, 1].
    """
    arr = _as_scores(scores)
    ok = np.asarray(correct, dtype=bool)
    if ok.shape != arr.shape:
        raise InvalidInputError(f"correct must have shape {arr.shape}, got {ok.shape}")
    if not 0.0 <= max_error <= 1.0:
        raise InvalidInputError(f"max_error must be in [0, 1], got {max_error}")
    order = np.argsort(-arr, kind="stable")
    sorted_scores = arr[order]
    cum_errors = np.cumsum(~ok[order])
    # last position of each run of equal scores: keeping `score >= value` keeps everything up to it
    ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    error = cum_errors[ends] / (ends + 1.0)
    feasible = ends[error <= max_error + 1e-12]
    return float(sorted_scores[feasible[-1]]) if feasible.size else float(np.inf)


@dataclass(frozen=True)
class RejectionRule:
    """When to reject a probe: doubtful (KL below a threshold) and/or unseen (novelty p below one).

    Parameters
    ----------
    kl_threshold : float or None, default=None
        Reject as "doubtful" when ``KL(P_first || P_second) < kl_threshold`` (paper eq. 6); None = off.
    novelty_threshold : float or None, default=None
        Reject as "unseen" when the novelty p-value ``< novelty_threshold``; None = off.
    """

    kl_threshold: float | None = None
    novelty_threshold: float | None = None

    def __post_init__(self) -> None:
        for name in ("kl_threshold", "novelty_threshold"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
                raise ConfigError(f"RejectionRule.{name} must be None or a number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))  # plain float keeps to_dict JSON-able

    def apply(self, kl=None, novelty_p=None) -> tuple[np.ndarray, np.ndarray]:
        """Decide which probes to reject and why.

        Parameters
        ----------
        kl : array-like of shape (n_probes,), optional
            KL(P_first || P_second) per probe; required when `kl_threshold` is set.
        novelty_p : array-like of shape (n_probes,), optional
            Novelty p-value per probe; required when `novelty_threshold` is set.

        Returns
        -------
        rejected : ndarray of bool of shape (n_probes,)
        reasons : ndarray of str of shape (n_probes,)
            ``""`` (kept), ``"doubtful"`` or ``"unseen"``; "unseen" wins when both rules fire.

        Raises
        ------
        InvalidInputError
            If an active rule's scores are missing or hold NaN, or the shapes differ.
        """
        checks = [("kl", kl, self.kl_threshold, "doubtful"),
                  ("novelty_p", novelty_p, self.novelty_threshold, "unseen")]
        given = [np.asarray(v, dtype=float) for _, v, _, _ in checks if v is not None]
        if not given:
            raise InvalidInputError("RejectionRule.apply needs kl or novelty_p")
        shape = given[0].shape
        reasons = np.full(shape, "", dtype="<U8")
        for name, values, threshold, reason in checks:  # later rules override earlier reasons
            if values is None:
                if threshold is not None:
                    raise InvalidInputError(f"{name} is required when RejectionRule uses it")
                continue
            arr = np.asarray(values, dtype=float)
            if arr.shape != shape or arr.ndim != 1:
                raise InvalidInputError(f"{name} must be 1-D of shape {shape}, got {arr.shape}")
            if np.any(np.isnan(arr)):
                raise InvalidInputError(f"{name} contains NaN")
            if threshold is not None:
                reasons[arr < threshold] = reason
        return reasons != "", reasons

    def to_dict(self) -> dict:
        """JSON-able fields: ``{"kl_threshold": ..., "novelty_threshold": ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: Mapping) -> RejectionRule:
        """Rebuild a rule from `to_dict` output; unknown keys raise `ConfigError`."""
        if not isinstance(state, Mapping):
            raise ConfigError("rejection rule must be a dict")
        unknown = sorted(set(state) - {"kl_threshold", "novelty_threshold"})
        if unknown:
            raise ConfigError(f"unknown rejection rule keys: {unknown}")
        return cls(**state)
