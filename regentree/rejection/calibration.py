"""Rejection thresholds chosen for a target on a calibration split, instead of raw numbers.

A target is "reject at most r of the known-class probes" (`max_rejection`) or "error at most e on
the probes kept" (`max_selective_error`); with a `confidence` c, the rejection target holds for new
probes with probability c instead of on the calibration probes themselves. The rule is the KL rule
("doubtful"), the novelty rule ("unseen") or both together; both together are calibrated on one
combined confidence, the smaller of the probe's two calibration ranks, so a level q rejects every
probe that either rule alone would reject at level q, and the pair of thresholds is chosen jointly.

`fit` uses the same machinery by default (`rejection_target`): `calibration_split` holds out a seeded,
stratified share of the training images, capped at `MAX_CALIBRATION_PROBES`, that no VAE (nor the base
VAE) trains or early-stops on, and the KL threshold is set to reject the target share of them. A fixed
KL threshold does not transfer across label-set sizes (docs/how-it-works.md); a share of probes does.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from regentree.data.validation import class_indices
from regentree.errors import InvalidInputError
from regentree.progress import ProgressCallback
from regentree.rejection.score_shift import score_sample
from regentree.rejection.thresholds import RejectionRule, threshold_for_rejection_rate, threshold_for_selective_error

RULES = ("kl", "novelty", "both")
CALIBRATION_FRACTION = 0.1  # share of the training images `fit` holds out to set the rejection threshold
MAX_CALIBRATION_PROBES = 2000  # at most this many: bounds the scoring cost at large M (KL quantiles need no more)
DEFAULT_REJECTION_TARGET = 0.05  # share of known-class probes the default rule rejects, at any M

__all__ = ["CALIBRATION_FRACTION", "DEFAULT_REJECTION_TARGET", "MAX_CALIBRATION_PROBES", "RULES", "calibrate_model",
           "calibration_split", "choose_thresholds", "combined_confidence", "describe_origin"]


def calibration_split(y_index: np.ndarray, seed: int, min_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, calibration) indices: `CALIBRATION_FRACTION` of each class, `MAX_CALIBRATION_PROBES` in all.

    Each class gives its share of the calibration probes in proportion to its size (largest remainders
    break ties, seeded) but keeps at least `min_train` images for training; it depends only on the labels
    and the seed, so a flat and a tree model fitted on the same data hold out the same probes.
    """
    y_index = np.asarray(y_index)
    classes, counts = np.unique(y_index, return_counts=True)
    total = min(MAX_CALIBRATION_PROBES, int(round(CALIBRATION_FRACTION * len(y_index))))
    share = counts * total / len(y_index)
    take = np.floor(share).astype(np.int64)
    rng = np.random.default_rng(seed)
    remainder = share - take + rng.uniform(0, 1e-9, len(counts))
    take[np.argsort(-remainder)[: total - int(take.sum())]] += 1
    take = np.clip(take, 0, np.maximum(counts - min_train, 0))
    calibration = [rng.choice(np.flatnonzero(y_index == c), size=int(k), replace=False) for c, k in zip(classes, take)]
    held = np.sort(np.concatenate(calibration)) if calibration else np.empty(0, dtype=np.int64)
    return np.setdiff1d(np.arange(len(y_index)), held), held


def _ranks(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Number of reference values <= each value (1..n for a reference value itself)."""
    return np.searchsorted(np.sort(reference), values, side="right")


def combined_confidence(kl, novelty_p, kl_reference, novelty_reference) -> np.ndarray:
    """Confidence of the combined rule: the smaller of the probe's ranks under the two calibration sets.

    A probe's rank under a rule is the share of calibration probes whose score is at or below the
    probe's; rejecting the probes with combined confidence ``<= k / n`` is exactly rejecting those that
    the KL rule or the novelty rule rejects at the thresholds ``choose_thresholds`` derives from level k.

    Parameters
    ----------
    kl, novelty_p : array-like of shape (n_probes,)
        KL(P_first || P_second) and novelty p-value of the probes to score.
    kl_reference, novelty_reference : array-like of shape (n_calibration,)
        The same scores of the known-class calibration probes.

    Returns
    -------
    confidence : ndarray of shape (n_probes,)
        Values in [0, 1]; higher = more confident (less likely doubtful or unseen).
    """
    kl_ref = np.asarray(kl_reference, dtype=float)
    nov_ref = np.asarray(novelty_reference, dtype=float)
    if kl_ref.shape != nov_ref.shape or kl_ref.ndim != 1 or kl_ref.size == 0:
        raise InvalidInputError(
            f"kl_reference {kl_ref.shape} and novelty_reference {nov_ref.shape} must be non-empty 1-D of one length"
        )
    ranks = np.minimum(_ranks(kl_ref, np.asarray(kl, dtype=float)), _ranks(nov_ref, np.asarray(novelty_p, dtype=float)))
    return ranks / kl_ref.size


def _check_targets(max_rejection: Optional[float], max_selective_error: Optional[float], rule: str,
                   confidence: Optional[float] = None) -> None:
    if rule not in RULES:
        raise InvalidInputError(f"unknown rule {rule!r}; use one of {list(RULES)}")
    if max_rejection is None and max_selective_error is None:
        raise InvalidInputError("calibration needs a target: max_rejection and/or max_selective_error")
    if max_rejection is not None and not 0.0 <= max_rejection < 1.0:
        raise InvalidInputError(f"max_rejection must be in [0, 1), got {max_rejection}")
    if max_selective_error is not None and not 0.0 <= max_selective_error < 1.0:
        raise InvalidInputError(f"max_selective_error must be in [0, 1), got {max_selective_error}")
    if confidence is not None:
        if not 0.0 < confidence < 1.0:
            raise InvalidInputError(f"confidence must be in (0, 1), got {confidence}")
        if max_rejection is None or max_selective_error is not None:
            raise InvalidInputError("confidence applies to a max_rejection target alone, not to max_selective_error")


def _level(scores: np.ndarray, correct: np.ndarray, max_rejection, max_selective_error,
           confidence: Optional[float] = None) -> float:
    """Threshold on `scores` (reject below it) meeting the target with the least rejection needed."""
    if max_selective_error is None:
        threshold = threshold_for_rejection_rate(scores, max_rejection, confidence)
        if threshold == -np.inf:
            raise InvalidInputError(
                f"{scores.size} calibration probes are too few to promise rejection <= {max_rejection} "
                f"with confidence {confidence}; use more probes or a lower confidence"
            )
        return threshold
    threshold = threshold_for_selective_error(scores, correct, max_selective_error)
    if math.isinf(threshold):
        raise InvalidInputError(
            f"no threshold reaches selective error <= {max_selective_error} on the calibration set"
        )
    rate = float(np.mean(scores < threshold))
    if max_rejection is not None and rate > max_rejection:
        raise InvalidInputError(
            f"selective error <= {max_selective_error} needs {rate:.2%} rejection on the calibration set, "
            f"more than max_rejection {max_rejection:.2%}"
        )
    return threshold


def choose_thresholds(
    kl,
    novelty_p,
    correct,
    *,
    max_rejection: Optional[float] = None,
    max_selective_error: Optional[float] = None,
    rule: str = "kl",
    confidence: Optional[float] = None,
) -> tuple[RejectionRule, dict]:
    """Rejection thresholds meeting a target on scored calibration probes.

    Parameters
    ----------
    kl : array-like of shape (n_probes,)
        KL(P_first || P_second) of known-class calibration probes.
    novelty_p : array-like of shape (n_probes,)
        Their novelty p-values.
    correct : array-like of bool of shape (n_probes,)
        Whether each was classified correctly.
    max_rejection : float in [0, 1), optional
        Reject at most this share of the calibration probes; alone, the thresholds are the largest
        that stay within it (the most protection against unseen objects the budget allows).
    max_selective_error : float in [0, 1), optional
        Error among the kept probes at most this; the thresholds are the smallest that reach it, and
        with `max_rejection` also given they must stay within that budget.
    rule : {"kl", "novelty", "both"}, default="kl"
        Which rules to switch on; the other is switched off.
    confidence : float in (0, 1), optional
        With `max_rejection` alone: the thresholds reject at most `max_rejection` of *new* known-class
        probes with this probability over the calibration draw (an order-statistic bound, see
        `threshold_for_rejection_rate`), instead of at most that share of the calibration probes.

    Returns
    -------
    rule : RejectionRule
        The chosen thresholds (None for a rule switched off).
    report : dict
        JSON-able: the rule name, the targets, the thresholds, and the selective report (accuracy,
        p_miss, rejection_rate, ...) of the chosen rule on the calibration probes.

    Raises
    ------
    InvalidInputError
        If no target is given, a target is out of range, the inputs disagree in shape, or the targets
        cannot be met on these probes.
    """
    _check_targets(max_rejection, max_selective_error, rule, confidence)
    kl = np.asarray(kl, dtype=float)
    novelty_p = np.asarray(novelty_p, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if not (kl.ndim == 1 and kl.size and kl.shape == novelty_p.shape == correct.shape):
        raise InvalidInputError(
            f"kl {kl.shape}, novelty_p {novelty_p.shape} and correct {correct.shape} must be non-empty 1-D of one length"
        )
    if rule == "kl":
        chosen = RejectionRule(kl_threshold=_level(kl, correct, max_rejection, max_selective_error, confidence))
    elif rule == "novelty":
        chosen = RejectionRule(
            novelty_threshold=_level(novelty_p, correct, max_rejection, max_selective_error, confidence))
    else:
        combined = combined_confidence(kl, novelty_p, kl, novelty_p)
        level = _level(combined, correct, max_rejection, max_selective_error, confidence)
        k = int(round(level * kl.size)) - 1  # reject rank <= k  <=>  score < (k+1)-th smallest score
        chosen = RejectionRule(kl_threshold=float(np.sort(kl)[k]), novelty_threshold=float(np.sort(novelty_p)[k]))
    rejected, reasons = chosen.apply(kl, novelty_p)
    n_kept = int(np.sum(~rejected))
    accuracy = float(np.mean(correct[~rejected])) if n_kept else None
    return chosen, {
        "rule": rule,
        "max_rejection": max_rejection,
        "max_selective_error": max_selective_error,
        "confidence": confidence,
        **chosen.to_dict(),
        "n_calibration": int(kl.size),
        "rejection_rate": float(np.mean(rejected)),
        "selective_error": None if accuracy is None else 1.0 - accuracy,
        "accuracy": accuracy,
        "p_miss": float(np.sum(correct & rejected) / kl.size),
        "accuracy_no_rejection": float(np.mean(correct)),
        "rejected_doubtful": int(np.sum(reasons == "doubtful")),
        "rejected_unseen": int(np.sum(reasons == "unseen")),
    }


def calibrate_model(
    model,
    X_cal,
    y_cal,
    *,
    max_rejection: Optional[float] = None,
    max_selective_error: Optional[float] = None,
    rule: str = "kl",
    confidence: Optional[float] = None,
    progress: Optional[ProgressCallback] = None,
):
    """Score a labelled calibration split with `model`, choose thresholds, and store them on the model.

    Sets ``model.calibrated_rule_`` (the `RejectionRule` then in force) and ``model.calibration_report_``
    (see `choose_thresholds`, plus ``kl_sample``: `score_sample` of the calibration KL scores); returns the model. The targets are checked before any scoring.
    """
    _check_targets(max_rejection, max_selective_error, rule, confidence)
    y_index = class_indices(model.classes_, y_cal, where="y_cal")
    decision = model.decide(X_cal, progress=progress)
    if len(y_index) != len(decision.class_index):
        raise InvalidInputError(f"y_cal has {len(y_index)} labels for {len(decision.class_index)} probes in X_cal")
    verdict = model.judge(decision)
    chosen, report = choose_thresholds(
        decision.kl, verdict.novelty, decision.class_index == y_index,
        max_rejection=max_rejection, max_selective_error=max_selective_error, rule=rule, confidence=confidence,
    )
    model.calibrated_rule_ = chosen
    model.calibration_report_ = {**report, "kl_sample": score_sample(decision.kl)}  # for evaluate's shift test
    return model


def calibration_summary(model) -> Optional[dict]:
    """The model's calibration report without its stored KL sample (a thousand numbers nobody reads)."""
    report = getattr(model, "calibration_report_", None)
    return None if report is None else {k: v for k, v in report.items() if k != "kl_sample"}


def describe_origin(origin: dict) -> str:
    """'set by hand', or 'calibrated at fit on 144 held-out training probes for rejection <= 5.00% (rule kl)'.

    `origin` is a model's `rejection_origin()`.
    """
    if origin["how"] != "calibrated":
        return "set by hand"
    names = (("max_rejection", "rejection <="), ("max_selective_error", "selective error <="))
    targets = " and ".join(f"{name} {origin[key]:.2%}" for key, name in names if origin.get(key) is not None)
    sure = f" with confidence {origin['confidence']:g} on new probes" if origin.get("confidence") else ""
    where = "at fit on {} held-out training probes" if origin.get("source") == "fit" else "on {} probes"
    return f"calibrated {where.format(origin.get('n_calibration'))} for {targets}{sure} (rule {origin.get('rule')})"
