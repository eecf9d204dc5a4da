"""Adaptive re-generation: spend the K draws only on probes whose decision or KL is still uncertain.

Most probes are decided after a few dozen draws; a large K serves only probes whose winner is close
to the runner-up or whose KL(first || second) lies near a rejection threshold. Scoring runs in rounds
over one fixed noise bank of `n_regenerations` draws (the bank fixed-K scoring uses, so a probe that
runs to the end gets the fixed-K distances, equal up to float rounding). Works on any stack of two or
more VAEs: all class VAEs in flat mode, or the pair of one tree level:

    round 1: draws [0, k_min) for every probe; round r: draws up to k_min * 2**(r-1), capped at K.

Stopping rule, checked per probe after every round on its k draws so far (common random numbers make
the comparisons paired):

1. *Decision settled*: the winner w has the lowest statistic; for every other VAE c the paired
   differences ``d_c - d_w`` over the k draws have a t-statistic ``mean / (std / sqrt(k)) >= z``.
   (The test uses means also for the median decision, as a proxy.)
2. *KL settled* (only when a `kl_band` is given): the Gaussian KL(first || second) = ``(f(r) + (dm / s_q)**2) / 2`` (``r = s_p**2 / s_q**2``,
   ``f(r) = r - 1 - log r``, dm the mean gap) is clearly outside `kl_band`, the range of rejection
   thresholds whose verdicts must not change. Clearly means: the KL stays above ``band_high`` (or below
   ``band_low``) at the unfavourable end of the one-sided confidence bounds at level ``z``, that is
   ``dm -/+ z`` paired standard errors and the chi-square bounds (k - 1 degrees of freedom) of each
   standard deviation. Small samples often understate a spread and so overstate KL; the bounds
   guard against stopping on such an accident. (The Gaussian form is the proxy when the model's KL
   estimator is another.)

A probe stops when both hold; the rest continue. Probes still open at K use all K draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.stats import chi2, norm

from regentree.errors import ConfigError
from regentree.progress import ProgressCallback, report
from regentree.scoring.statistics import STATISTICS
from regentree.scoring.regeneration import VAEStack, as_stack, bank_distances, check_scoring, noise_bank
from regentree.constraints import check_choice
from regentree.vae.model import VAE

PAPER_KL_BAND = (1.0, 20.0)
"""The paper's Table I threshold range: the band that keeps a whole Acc/P_miss table unchanged."""
DEFAULT_Z = 3.0
"""Confidence of both stopping tests, in standard errors."""


@dataclass
class AdaptiveDistances:
    """Distances of adaptively scored probes.

    Attributes
    ----------
    distances : ndarray of shape (n_probes, n_vaes, n_regenerations), float32
        NaN beyond the draws a probe used.
    n_used : ndarray of int of shape (n_probes,)
        Draws each probe used; its distances are ``distances[i, :, :n_used[i]]``.
    """

    distances: np.ndarray
    n_used: np.ndarray


def round_schedule(n_regenerations_min: int, n_regenerations: int) -> list[int]:
    """Cumulative draws after each round: k_min, 2 k_min, 4 k_min, ..., capped at K."""
    if not 2 <= n_regenerations_min <= n_regenerations:
        raise ConfigError(
            f"n_regenerations_min must lie in [2, n_regenerations={n_regenerations}], got {n_regenerations_min}"
        )
    schedule = [int(n_regenerations_min)]
    while schedule[-1] < n_regenerations:
        schedule.append(min(2 * schedule[-1], int(n_regenerations)))
    return schedule


def _decision_settled(d: np.ndarray, winner: np.ndarray, z: float) -> np.ndarray:
    """Whether every paired t-statistic of (other - winner) reaches `z`; `d` is (n, M, k)."""
    rows = np.arange(len(d))
    diff = d - d[rows, winner][:, None, :]
    mean, std = diff.mean(axis=-1), diff.std(axis=-1, ddof=1)
    se = std / np.sqrt(d.shape[-1])
    t = np.divide(mean, se, out=np.where(mean > 0, np.inf, -np.inf), where=se > 0)
    t[rows, winner] = np.inf
    return t.min(axis=1) >= z


def _f(r: np.ndarray) -> np.ndarray:
    """r - 1 - log r: the variance part of the Gaussian KL, convex with its minimum 0 at r = 1."""
    return r - 1.0 - np.log(r)


def _kl_settled(first: np.ndarray, second: np.ndarray, band: tuple[float, float], z: float) -> np.ndarray:
    """Whether KL(first || second) is clearly outside `band` (module doc, rule 2); inputs (n, k)."""
    k = first.shape[-1]
    alpha = norm.sf(z)
    widen, narrow = np.sqrt((k - 1) / chi2.ppf(alpha, k - 1)), np.sqrt((k - 1) / chi2.ppf(1 - alpha, k - 1))
    floor = 1e-6 * np.maximum(np.abs(first).max(axis=-1), 1e-12)
    s_p = np.maximum(first.std(axis=-1, ddof=1), floor)
    s_q = np.maximum(second.std(axis=-1, ddof=1), floor)
    gap = np.abs(second.mean(axis=-1) - first.mean(axis=-1))
    margin = z * (second - first).std(axis=-1, ddof=1) / np.sqrt(k)
    r_low, r_high = (s_p * narrow / (s_q * widen)) ** 2, (s_p * widen / (s_q * narrow)) ** 2
    f_low = np.where((r_low <= 1) & (r_high >= 1), 0.0, np.minimum(_f(r_low), _f(r_high)))
    kl_low = 0.5 * (f_low + (np.maximum(gap - margin, 0.0) / (s_q * widen)) ** 2)
    kl_high = 0.5 * (np.maximum(_f(r_low), _f(r_high)) + ((gap + margin) / (s_q * narrow)) ** 2)
    return (kl_low > band[1]) | (kl_high < band[0])


def settled(
    d: np.ndarray, *, decision: str = "mean", kl_band: Optional[tuple[float, float]] = PAPER_KL_BAND,
    z: float = DEFAULT_Z,
) -> np.ndarray:
    """The stopping rule (module doc) for distances `d` of shape (n_probes, n_vaes, k): bool (n_probes,).

    `kl_band` None: no KL verdict to keep, the decision alone settles a probe.
    """
    scores = STATISTICS[decision](d)
    order = np.argsort(scores, axis=1, kind="stable")
    rows = np.arange(len(d))
    done = _decision_settled(d, order[:, 0], z)
    if done.any() and kl_band is not None:
        open_kl = _kl_settled(d[rows, order[:, 0]][done], d[rows, order[:, 1]][done], kl_band, z)
        done[np.flatnonzero(done)[~open_kl]] = False
    return done


def adaptive_distances(
    vaes: Sequence[VAE] | VAEStack,
    X: np.ndarray,
    *,
    n_regenerations: int = 300,
    n_regenerations_min: int = 16,
    noise_variance: float = 1.0,
    distance: str = "cross_entropy",
    decision: str = "mean",
    kl_band: Optional[tuple[float, float]] = PAPER_KL_BAND,
    z: float = DEFAULT_Z,
    seed: int = 0,
    memory_budget_mb: float = 256.0,
    device: str = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> AdaptiveDistances:
    """Distances of each probe under each VAE, with draws added in rounds until the stopping rule holds.

    Parameters
    ----------
    vaes : sequence of VAE or VAEStack
        The VAEs that score the probes (at least 2: the rule compares a winner with runners-up).
    X : ndarray of shape (n_probes, input_dim)
    n_regenerations : int
        K_max, the size of the noise bank and the most draws a probe gets.
    n_regenerations_min : int
        Draws of the first round.
    decision : {"mean", "median"}
        Statistic that picks the winner.
    kl_band : (float, float) or None
        Lowest and highest KL threshold whose rejection verdicts must be kept; a single threshold t
        is (t, t); None when no KL verdict matters (only the decision is kept).
    z : float
        Confidence of the stopping tests in standard errors (larger = more draws, closer to fixed K).
    noise_variance, distance, seed, memory_budget_mb, device, progress
        As for `regentree.scoring.regeneration.regenerate_distances`.

    Returns
    -------
    AdaptiveDistances
    """
    check_scoring(distance, noise_variance)
    check_choice("decision", decision, STATISTICS)
    if kl_band is not None and not 0 < kl_band[0] <= kl_band[1]:
        raise ConfigError(f"kl_band must be (low, high) with 0 < low <= high, got {tuple(kl_band)}")
    stack = as_stack(vaes, X, device)
    if len(stack) < 2:
        raise ConfigError(f"adaptive scoring compares VAEs and needs at least 2, got {len(stack)}")
    schedule = round_schedule(n_regenerations_min, n_regenerations)
    eps = noise_bank(n_regenerations, stack.config.latent_dim, seed)
    out = np.full((X.shape[0], len(stack), n_regenerations), np.nan, dtype=np.float32)
    n_used = np.zeros(X.shape[0], dtype=np.int64)
    active = np.arange(X.shape[0])
    start = 0
    for stop in schedule:
        part = bank_distances(
            stack, X[active], eps[start:stop], noise_scale=float(noise_variance) ** 0.5, distance=distance,
            memory_budget_mb=memory_budget_mb,
        )
        out[active, :, start:stop] = part
        n_used[active] = stop
        start = stop
        if stop < n_regenerations and len(active):
            active = active[~settled(out[active, :, :stop], decision=decision, kl_band=kl_band, z=z)]
        report(progress, "scoring", X.shape[0] - len(active) if stop < n_regenerations else X.shape[0], X.shape[0])
        if not len(active):
            break
    return AdaptiveDistances(out, n_used)
