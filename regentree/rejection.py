"""Rejection of probes: KL(first || second) flags "doubtful" probes, novelty p-values flag "unseen" ones.

A probe is re-generated K times by every VAE it meets, giving one distribution of distances per VAE.
The paper (eq. 6) rejects a probe as doubtful when the Kullback-Leibler divergence between the distance
distribution of the best class and that of the second-best class is below a threshold. Independently,
`NoveltyScorer` compares the probe's distortion with the distortions the winning class showed on its own
training data, and flags probes whose distortion is unusually large as unseen.

All confidence scores here follow "higher = more confident": a large KL means the winner is clearly
separated from the runner-up, a large novelty p-value means the distortion is typical for the class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from dataclasses import asdict, dataclass

import numpy as np
from scipy.integrate import trapezoid
from scipy.stats import beta, gaussian_kde

from regentree.conformal import conformal_p_values
from regentree.errors import ConfigError, InvalidInputError, NotFittedError

__all__ = [
    "KL_ESTIMATORS",
    "NoveltyScorer",
    "RejectionRule",
    "first_second_kl",
    "kl_divergence",
    "threshold_for_rejection_rate",
    "threshold_for_selective_error",
]

_REL_STD_FLOOR = 1e-6  # std floor, relative to the scale of the two sample sets
_ABS_STD_FLOOR = 1e-12  # std floor when every sample is (close to) zero
_KDE_GRID = 1024  # points of each of the two grids the KDE estimator integrates on
_KDE_DENSITY_FLOOR = 1e-12  # floor of q, relative to its peak, so that log(p / q) stays finite


def _std_floor(mean_p, mean_q, std_p, std_q) -> np.ndarray:
    """Smallest standard deviation allowed for a pair of sample sets, shape of the broadcast leading dims."""
    scale = np.maximum(np.maximum(np.abs(mean_p), np.abs(mean_q)), np.maximum(std_p, std_q))
    return np.maximum(_REL_STD_FLOOR * scale, _ABS_STD_FLOOR)


def _gaussian_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Closed-form KL between Gaussians fitted to the sample sets; vectorized over the leading dims."""
    mean_p, mean_q = p.mean(axis=-1), q.mean(axis=-1)
    std_p, std_q = p.std(axis=-1, ddof=1), q.std(axis=-1, ddof=1)
    floor = _std_floor(mean_p, mean_q, std_p, std_q)
    std_p, std_q = np.maximum(std_p, floor), np.maximum(std_q, floor)
    ratio = (std_p / std_q) ** 2
    return 0.5 * (ratio - 1.0 - np.log(ratio) + ((mean_p - mean_q) / std_q) ** 2)


def _density(samples: np.ndarray, floor: float) -> tuple[Callable[[np.ndarray], np.ndarray], float]:
    """A 1-D density estimate of `samples` and its kernel bandwidth.

    `scipy.stats.gaussian_kde` (Scott's rule) when the samples spread; a single Gaussian of width
    `floor` around their mean when they are (nearly) constant, where the KDE covariance is singular.
    """
    std = samples.std(ddof=1)
    if std <= floor:
        mean = samples.mean()
        norm = 1.0 / (floor * np.sqrt(2.0 * np.pi))
        return (lambda x: norm * np.exp(-0.5 * ((x - mean) / floor) ** 2)), floor
    kde = gaussian_kde(samples)
    return kde, float(np.sqrt(kde.covariance[0, 0]))


def _kde_kl_one(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) between Gaussian KDEs of two 1-D sample sets, integrated numerically."""
    mean_p, mean_q, std_p, std_q = p.mean(), q.mean(), p.std(ddof=1), q.std(ddof=1)
    floor = float(_std_floor(mean_p, mean_q, std_p, std_q))
    pdf_p, bw_p = _density(p, floor)
    pdf_q, bw_q = _density(q, floor)
    bw = max(bw_p, bw_q)
    lo = min(p.min(), q.min()) - 3.0 * bw
    hi = max(p.max(), q.max()) + 3.0 * bw
    # The shared grid spans both sample sets; a second, finer grid over P's support keeps the
    # integral accurate when P is narrow compared with the distance between the two sets.
    grid = np.union1d(
        np.linspace(lo, hi, _KDE_GRID),
        np.linspace(p.min() - 3.0 * bw_p, p.max() + 3.0 * bw_p, _KDE_GRID),
    )
    dens_p, dens_q = pdf_p(grid), pdf_q(grid)
    dens_p = dens_p / trapezoid(dens_p, grid)
    dens_q = dens_q / trapezoid(dens_q, grid)
    dens_q = np.maximum(dens_q, _KDE_DENSITY_FLOOR * dens_q.max())
    positive = dens_p > 0
    integrand = np.zeros_like(dens_p)
    integrand[positive] = dens_p[positive] * np.log(dens_p[positive] / dens_q[positive])
    return max(float(trapezoid(integrand, grid)), 0.0)


def _kde_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL between Gaussian KDEs, looping over the broadcast leading dims."""
    lead = np.broadcast_shapes(p.shape[:-1], q.shape[:-1])
    p = np.broadcast_to(p, lead + p.shape[-1:]).reshape(-1, p.shape[-1])
    q = np.broadcast_to(q, lead + q.shape[-1:]).reshape(-1, q.shape[-1])
    out = np.array([_kde_kl_one(pi, qi) for pi, qi in zip(p, q)], dtype=float)
    return out.reshape(lead)


KL_ESTIMATORS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "gaussian": _gaussian_kl,
    "kde": _kde_kl,
}
"""KL estimators by name; each maps samples of shapes (..., K_p) and (..., K_q) to KL of shape (...)."""


def _as_samples(values, name: str) -> np.ndarray:
    """`values` as a finite float array with at least two samples along the last axis."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] < 2:
        raise InvalidInputError(f"{name} needs at least 2 samples along its last axis, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    return arr


def kl_divergence(p_samples, q_samples, estimator: str = "gaussian") -> np.ndarray:
    """Estimate KL(P || Q) from samples of P and Q.

    Parameters
    ----------
    p_samples : array-like of shape (..., K_p)
        Samples of P along the last axis (e.g. the K distances of the best class per probe).
    q_samples : array-like of shape (..., K_q)
        Samples of Q along the last axis; leading dims broadcast against those of `p_samples`.
    estimator : {"gaussian", "kde"}, default="gaussian"
        Key of `KL_ESTIMATORS`.

        - ``"gaussian"`` fits a Gaussian (mean, std with ddof=1) to each sample set and uses the closed
          form ``log(s_q / s_p) + (s_p**2 + (m_p - m_q)**2) / (2 s_q**2) - 1/2``. Fully vectorized.
          Standard deviations are floored at 1e-6 times the scale of the two sets, so constant samples
          give 0 (identical) or a large finite value (different), never inf or NaN.
        - ``"kde"`` fits `scipy.stats.gaussian_kde` to each set, evaluates both on a grid spanning both
          sets (± 3 bandwidths) and integrates ``p log(p / q)`` with q floored at 1e-12 of its peak.
          Loops over the leading dims; slow for many probes. KDE tails are thinner than the true
          ones (they fall off with the bandwidth), so KL(wide || narrow) is overestimated.

        The Gaussian estimator is the default because its values behave sensibly over the paper's
        threshold range (1–20): KL grows like ``(Δmean / std)**2 / 2``, so thresholds 1–20 correspond
        to separations of about 1.4–6.3 standard deviations and keep discriminating. Non-parametric
        estimators (a histogram with tiny smoothing, or the KDE with its density floor) saturate at
        roughly ``-log(floor)`` as soon as the two sets stop overlapping, so every clear probe gets
        the same value and the threshold loses its meaning.

    Returns
    -------
    kl : ndarray of shape (...)
        Non-negative KL(P || Q) per broadcast leading index.

    Raises
    ------
    ConfigError
        If `estimator` is not a key of `KL_ESTIMATORS`.
    InvalidInputError
        If a sample set has fewer than 2 samples, NaN or inf, or the leading dims do not broadcast.
    """
    if estimator not in KL_ESTIMATORS:
        raise ConfigError(f"unknown KL estimator {estimator!r}; valid: {', '.join(sorted(KL_ESTIMATORS))}")
    p = _as_samples(p_samples, "p_samples")
    q = _as_samples(q_samples, "q_samples")
    try:
        np.broadcast_shapes(p.shape[:-1], q.shape[:-1])
    except ValueError:
        raise InvalidInputError(
            f"p_samples {p.shape} and q_samples {q.shape} have leading dims that do not broadcast"
        ) from None
    return np.maximum(KL_ESTIMATORS[estimator](p, q), 0.0)


def first_second_kl(distances, order, estimator: str = "gaussian") -> np.ndarray:
    """KL(P_first || P_second) per probe: the paper's doubtfulness score (eq. 6).

    Parameters
    ----------
    distances : array-like of shape (n_probes, n_vaes, K)
        K re-generation distances of each probe under each VAE.
    order : array-like of int of shape (n_probes, n_vaes)
        Per probe, VAE indices sorted by their class statistic ascending (best first), e.g. the
        `argsort` of the mean distances.
    estimator : {"gaussian", "kde"}, default="gaussian"
        See `kl_divergence`.

    Returns
    -------
    kl : ndarray of shape (n_probes,)
        KL between the distance distribution of the best VAE and that of the second best.

    Raises
    ------
    InvalidInputError
        If the shapes disagree, there are fewer than 2 VAEs, or `order` holds invalid indices.
    """
    dist = np.asarray(distances, dtype=float)
    idx = np.asarray(order)
    if dist.ndim != 3:
        raise InvalidInputError(f"distances must have shape (n_probes, n_vaes, K), got {dist.shape}")
    if idx.shape != dist.shape[:2]:
        raise InvalidInputError(f"order must have shape {dist.shape[:2]}, got {idx.shape}")
    if dist.shape[1] < 2:
        raise InvalidInputError(f"first_second_kl needs at least 2 VAEs per probe, got {dist.shape[1]}")
    if not np.issubdtype(idx.dtype, np.integer) or idx.min(initial=0) < 0 or idx.max(initial=0) >= dist.shape[1]:
        raise InvalidInputError(f"order must hold integer VAE indices in [0, {dist.shape[1]})")
    rows = np.arange(dist.shape[0])
    return kl_divergence(dist[rows, idx[:, 0]], dist[rows, idx[:, 1]], estimator=estimator)


class NoveltyScorer:
    """Empirical p-value of a probe's distortion under the distortions its class showed in training.

    ``p = (1 + #{reference >= d}) / (1 + n_reference)``, computed against the reference distortions of
    the predicted class. A small p-value means the distortion is larger than (almost) anything the class
    VAE produced on its own data: the probe is likely of an unseen kind.

    Attributes
    ----------
    reference_ : dict of int to ndarray of shape (n_reference,)
        Sorted reference distortions per class index, set by `fit`.
    """

    def fit(self, distortions_by_class: Mapping[int, np.ndarray] | Sequence[np.ndarray]) -> NoveltyScorer:
        """Store the sorted reference distortions of every class.

        Parameters
        ----------
        distortions_by_class : dict of int to array-like of shape (n_reference,), or list of them
            Distortions of each class's training (or calibration) probes under its own VAE; a list is
            indexed by class index.

        Returns
        -------
        self : NoveltyScorer

        Raises
        ------
        InvalidInputError
            If a class has no distortions, or they are not a finite 1-D array.
        """
        items = (
            distortions_by_class.items()
            if isinstance(distortions_by_class, Mapping)
            else enumerate(distortions_by_class)
        )
        reference = {}
        for key, values in items:
            arr = np.asarray(values, dtype=float)
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
                raise InvalidInputError(
                    f"distortions of class {key} must be a non-empty finite 1-D array, got shape {arr.shape}"
                )
            reference[int(key)] = np.sort(arr)
        if not reference:
            raise InvalidInputError("distortions_by_class holds no class")
        self.reference_ = reference
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise NotFittedError("NoveltyScorer is not fitted; call fit first")

    def score(self, class_index, distortion) -> np.ndarray:
        """Novelty p-value of each probe under its (predicted) class.

        Parameters
        ----------
        class_index : array-like of int of shape (n_probes,)
            Class index each probe is scored against (usually the predicted class).
        distortion : array-like of shape (n_probes,)
            The probe's distortion, the same statistic as the reference distortions.

        Returns
        -------
        p_value : ndarray of shape (n_probes,)
            Values in (0, 1]; small = unusually large distortion = likely unseen.

        Raises
        ------
        NotFittedError
            If `fit` has not been called.
        InvalidInputError
            If the shapes differ, a distortion is NaN, or a class index has no reference.
        """
        self._check_fitted()
        cls = np.asarray(class_index)
        dist = np.asarray(distortion, dtype=float)
        if cls.ndim != 1 or cls.shape != dist.shape:
            raise InvalidInputError(
                f"class_index {cls.shape} and distortion {dist.shape} must be 1-D of the same length"
            )
        if np.any(np.isnan(dist)):
            raise InvalidInputError("distortion contains NaN")
        unknown = sorted(set(cls.tolist()) - set(self.reference_))
        if unknown:
            raise InvalidInputError(f"class_index holds classes without reference distortions: {unknown}")
        p_value = np.empty(dist.shape, dtype=float)
        for key in np.unique(cls):
            ref = self.reference_[int(key)]
            mask = cls == key
            p_value[mask] = conformal_p_values(ref, dist[mask])
        return p_value

    def to_dict(self) -> dict:
        """JSON-able state: ``{"reference": {"<class index>": [sorted distortions, ...]}}``."""
        self._check_fitted()
        return {"reference": {str(k): v.tolist() for k, v in self.reference_.items()}}

    @classmethod
    def from_dict(cls, state: Mapping) -> NoveltyScorer:
        """Rebuild a fitted scorer from `to_dict` output.

        Raises
        ------
        ConfigError
            If `state` lacks the ``"reference"`` mapping or holds invalid distortions.
        """
        reference = state.get("reference") if isinstance(state, Mapping) else None
        if not isinstance(reference, Mapping):
            raise ConfigError("novelty scorer state must be a dict with a 'reference' mapping")
        try:
            return cls().fit({int(k): v for k, v in reference.items()})
        except (InvalidInputError, ValueError, TypeError) as exc:
            raise ConfigError(f"invalid novelty scorer state: {exc}") from None


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
