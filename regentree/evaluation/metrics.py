"""Evaluation metrics: selective accuracy and P_miss (paper eq. 5), risk–coverage, AURC, E-AURC, AUGRC, OOD detection.

Conventions
-----------
- Confidence scores for selective classification are "higher = more confident" (KL, max softmax,
  novelty p-value); a probe is rejected when its score is below a threshold.
- OOD scores follow pytorch-ood's `OODMetrics`: unseen probes are the POSITIVE class and the score is an
  "outlierness", higher = more likely unseen. Pass ``-kl`` or ``-novelty_p`` (or ``1 - p``), not the
  confidence itself.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score, roc_curve
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

from regentree.errors import InvalidInputError

__all__ = [
    "accuracy_at_coverage",
    "accuracy_interval",
    "augrc",
    "aurc",
    "confusion_matrix",
    "e_aurc",
    "ood_metrics",
    "risk_at_coverage",
    "risk_coverage_curve",
    "selective_report",
    "threshold_table",
]


def _vector(values, name: str, dtype=None) -> np.ndarray:
    arr = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: arr.shape[0] for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidInputError(f"arrays differ in length: {lengths}")


def _confidence(values, name: str = "confidence") -> np.ndarray:
    arr = _vector(values, name, dtype=float)
    if np.any(np.isnan(arr)):
        raise InvalidInputError(f"{name} contains NaN")
    return arr


def accuracy_interval(n_correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval for an accuracy of `n_correct` out of `n` probes.

    At 99.8 % on a few thousand probes the accuracy rests on a handful of errors; the interval says how far
    another draw of the same size could land. (NaN, NaN) when n is 0.
    """
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"level must be in (0, 1), got {level!r}")
    if not 0 <= n_correct <= n:
        raise InvalidInputError(f"need 0 <= n_correct <= n, got n_correct={n_correct}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    low = 0.0 if n_correct == 0 else float(beta.ppf(tail, n_correct, n - n_correct + 1))
    high = 1.0 if n_correct == n else float(beta.ppf(1.0 - tail, n_correct + 1, n - n_correct))
    return low, high


def selective_report(y_true, y_pred, rejected) -> dict:
    """Accuracy with a reject option, as in the paper (eq. 5).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_probes,)
        True and predicted labels (any comparable values).
    rejected : array-like of bool of shape (n_probes,)
        Whether each probe was rejected.

    Returns
    -------
    report : dict
        - ``accuracy``: #(correct and kept) / #kept; NaN when every probe is rejected.
        - ``accuracy_ci95``: [low, high], its exact 95 % interval (`accuracy_interval`).
        - ``p_miss``: #(correct and rejected) / #probes (a fraction, not a percentage).
        - ``rejection_rate``: #rejected / #probes; ``coverage`` = 1 - rejection_rate.
        - ``accuracy_no_rejection``: #correct / #probes.
        - counts ``n``, ``n_kept``, ``n_rejected``, ``n_correct``, ``n_correct_kept``,
          ``n_correct_rejected`` (ints).
    """
    y_true = _vector(y_true, "y_true")
    y_pred = _vector(y_pred, "y_pred")
    rej = _vector(rejected, "rejected", dtype=bool)
    _same_length(y_true=y_true, y_pred=y_pred, rejected=rej)
    correct = y_true == y_pred
    n = int(correct.size)
    n_rejected = int(rej.sum())
    n_kept = n - n_rejected
    n_correct_kept = int(np.sum(correct & ~rej))
    n_correct_rejected = int(np.sum(correct & rej))
    return {
        "accuracy": n_correct_kept / n_kept if n_kept else float("nan"),
        "accuracy_ci95": list(accuracy_interval(n_correct_kept, n_kept)),
        "p_miss": n_correct_rejected / n,
        "rejection_rate": n_rejected / n,
        "coverage": n_kept / n,
        "accuracy_no_rejection": int(correct.sum()) / n,
        "n": n,
        "n_kept": n_kept,
        "n_rejected": n_rejected,
        "n_correct": int(correct.sum()),
        "n_correct_kept": n_correct_kept,
        "n_correct_rejected": n_correct_rejected,
    }


def threshold_table(y_true, y_pred, kl, thresholds) -> list[dict]:
    """Accuracy and P_miss per KL threshold, the paper's Tables I/III (rejection when ``kl < thr``, eq. 6).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_probes,)
    kl : array-like of shape (n_probes,)
        KL(P_first || P_second) per probe.
    thresholds : iterable of float

    Returns
    -------
    rows : list of dict
        One dict per threshold with keys ``threshold``, ``accuracy``, ``p_miss``, ``rejection_rate``.
    """
    kl = _confidence(kl, "kl")
    rows = []
    for thr in thresholds:
        report = selective_report(y_true, y_pred, kl < thr)
        rows.append({
            "threshold": float(thr),
            "accuracy": report["accuracy"],
            "p_miss": report["p_miss"],
            "rejection_rate": report["rejection_rate"],
        })
    return rows


def _expected_cum_errors(correct, confidence) -> np.ndarray:
    """Expected number of errors among the k most confident probes, k = 1..n.

    Probes are sorted by confidence descending; inside a run of tied confidences the errors are
    spread evenly (the expectation over random tie-breaking), so the result does not depend on the
    input order.
    """
    ok = _vector(correct, "correct", dtype=bool)
    conf = _confidence(confidence)
    _same_length(correct=ok, confidence=conf)
    order = np.argsort(-conf, kind="stable")
    conf, errors = conf[order], (~ok[order]).astype(float)
    starts = np.flatnonzero(np.r_[True, conf[1:] != conf[:-1]])
    sizes = np.diff(np.r_[starts, conf.size])
    before = np.r_[0.0, np.cumsum(errors)][starts]  # errors before each tie group
    group_err = np.add.reduceat(errors, starts)
    group = np.repeat(np.arange(starts.size), sizes)
    position = np.arange(conf.size) - starts[group] + 1  # 1-based position inside the group
    return before[group] + position * group_err[group] / sizes[group]


def risk_coverage_curve(correct, confidence) -> tuple[np.ndarray, np.ndarray]:
    """Selective risk as a function of coverage.

    Parameters
    ----------
    correct : array-like of bool of shape (n_probes,)
        Whether each prediction is correct.
    confidence : array-like of shape (n_probes,)
        Higher = more confident; probes are kept in order of decreasing confidence.

    Returns
    -------
    coverage : ndarray of shape (n_probes,)
        ``k / n`` for ``k = 1..n``.
    risk : ndarray of shape (n_probes,)
        Error rate among the ``k`` most confident probes (ties: expectation over tie orders).
    """
    cum_errors = _expected_cum_errors(correct, confidence)
    k = np.arange(1, cum_errors.size + 1)
    return k / cum_errors.size, cum_errors / k


def aurc(correct, confidence) -> float:
    """Area under the risk–coverage curve (Geifman et al., 2019): the mean selective risk over k = 1..n.

    Parameters
    ----------
    correct : array-like of bool of shape (n_probes,)
    confidence : array-like of shape (n_probes,)
        Higher = more confident.

    Returns
    -------
    aurc : float
        Lower is better; 0 when every prediction is correct.
    """
    return float(np.mean(risk_coverage_curve(correct, confidence)[1]))


def e_aurc(correct, confidence) -> float:
    """Excess AURC (Geifman et al., 2019): AURC minus that of the ideal ordering (every error least confident).

    The ideal AURC is the discrete one of the same n probes and errors m, the mean over k of
    ``max(0, k - (n - m)) / k``, so E-AURC is 0 exactly when no error outranks a correct prediction.
    """
    ok = _vector(correct, "correct", dtype=bool)
    n, m = ok.size, int((~ok).sum())
    k = np.arange(1, n + 1)
    ideal = float(np.mean(np.maximum(0, k - (n - m)) / k))
    return aurc(ok, confidence) - ideal


def augrc(correct, confidence) -> float:
    """Area under the generalized risk–coverage curve (Traub et al., 2024): the mean over k = 1..n of
    the errors among the k most confident probes divided by n, the share of silent failures.

    Unlike AURC it weighs every coverage by how many probes it keeps, so a few early errors do not dominate.
    """
    cum_errors = _expected_cum_errors(correct, confidence)
    return float(np.mean(cum_errors / cum_errors.size))


def risk_at_coverage(correct, confidence, coverage: float) -> float:
    """Error rate among the ``ceil(coverage * n)`` most confident probes: 1 - `accuracy_at_coverage`."""
    return 1.0 - accuracy_at_coverage(correct, confidence, coverage)


def accuracy_at_coverage(correct, confidence, coverage: float) -> float:
    """Accuracy among the ``ceil(coverage * n)`` most confident probes.

    Parameters
    ----------
    correct : array-like of bool of shape (n_probes,)
    confidence : array-like of shape (n_probes,)
        Higher = more confident.
    coverage : float in (0, 1]

    Returns
    -------
    accuracy : float
    """
    if not 0.0 < coverage <= 1.0:
        raise InvalidInputError(f"coverage must be in (0, 1], got {coverage}")
    cov, risk = risk_coverage_curve(correct, confidence)
    k = max(int(np.ceil(coverage * cov.size - 1e-9)), 1)
    return float(1.0 - risk[k - 1])


def ood_metrics(score_known, score_unseen) -> dict:
    """Detection of unseen probes, with the definitions of pytorch-ood's `OODMetrics`.

    Unseen probes are the positive class; scores are "outlierness" (higher = more likely unseen).

    Parameters
    ----------
    score_known : array-like of shape (n_known,)
        Outlier scores of probes of the known classes (negatives).
    score_unseen : array-like of shape (n_unseen,)
        Outlier scores of probes of unseen classes (positives).

    Returns
    -------
    metrics : dict
        - ``auroc``: area under the ROC curve (0.5 = chance, 1 = perfect, 0 = reversed).
        - ``aupr_in``: area under the precision–recall curve with known probes as positives and
          ``-score`` as their score.
        - ``aupr_out``: the same with unseen probes as positives.
        - ``fpr95``: false positive rate (known probes flagged unseen) at the first threshold whose
          true positive rate is >= 0.95.

        As in pytorch-ood, the AUPRs are trapezoidal areas under the full precision–recall curve
        (``auc(recall, precision)``), not sklearn's step-wise average precision; the ROC curve keeps
        every threshold (no ``drop_intermediate``). pytorch-ood passes scores through a sigmoid
        first (torchmetrics), which only matters for scores large enough to saturate it.
    """
    known = _confidence(score_known, "score_known")
    unseen = _confidence(score_unseen, "score_unseen")
    scores = np.concatenate([known, unseen])
    labels = np.r_[np.zeros(known.size, dtype=int), np.ones(unseen.size, dtype=int)]
    precision, recall, _ = precision_recall_curve(labels, scores)
    precision_in, recall_in, _ = precision_recall_curve(1 - labels, -scores)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    idx = min(int(np.searchsorted(tpr, 0.95, side="left")), fpr.size - 1)
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "aupr_in": float(auc(recall_in, precision_in)),
        "aupr_out": float(auc(recall, precision)),
        "fpr95": float(fpr[idx]),
    }


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Confusion matrix over class indices ``0..n_classes-1``.

    Parameters
    ----------
    y_true, y_pred : array-like of int of shape (n_probes,)
        Class indices; probes whose true or predicted value is outside ``0..n_classes-1`` (e.g. -1
        for rejected) are left out.
    n_classes : int

    Returns
    -------
    matrix : ndarray of int of shape (n_classes, n_classes)
        ``matrix[i, j]`` = number of probes of class i predicted as j.
    """
    y_true = _vector(y_true, "y_true")
    y_pred = _vector(y_pred, "y_pred")
    _same_length(y_true=y_true, y_pred=y_pred)
    if n_classes < 1:
        raise InvalidInputError(f"n_classes must be >= 1, got {n_classes}")
    return _sk_confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
