"""Evaluation of a fitted model on a labelled data set: one scoring pass, every report derived from it.

With a second, unseen data set (objects of none of the model's classes), the report adds how well the
KL score and the novelty score tell the two apart (pytorch-ood conventions: unseen = positive) and how
many of each the rule in force rejects. With a fitted `SoftmaxBaseline`, the same metrics for it (its
maximum softmax probability as the confidence) sit beside the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from regentree.data import Dataset
from regentree.data.validation import class_indices
from regentree.estimators.outputs import Decision, Prediction
from regentree.evaluation.metrics import (
    accuracy_at_coverage,
    augrc,
    aurc,
    confusion_matrix,
    e_aurc,
    ood_metrics,
    risk_at_coverage,
    selective_report,
    threshold_table,
)
from regentree.progress import ProgressCallback
from regentree.rejection.calibration import calibration_summary
from regentree.rejection.score_shift import score_shift


def true_class_index(model, dataset: Dataset) -> np.ndarray:
    """Indices into `model.classes_` of the data set's labels; unknown labels raise `InvalidInputError`."""
    return class_indices(model.classes_, dataset.labels, where=dataset.source)


COVERAGES = (0.8, 0.9, 0.95)


def risk_coverage_report(correct, confidence, coverages: Sequence[float] = COVERAGES) -> dict:
    """AURC, E-AURC, AUGRC, and accuracy and risk at fixed coverages of `confidence` (higher = more confident)."""
    return {
        "aurc": aurc(correct, confidence),
        "e_aurc": e_aurc(correct, confidence),
        "augrc": augrc(correct, confidence),
        **{f"accuracy_at_coverage_{c:g}": accuracy_at_coverage(correct, confidence, c) for c in coverages},
        **{f"risk_at_coverage_{c:g}": risk_at_coverage(correct, confidence, c) for c in coverages},
    }


def unseen_report(known, unseen) -> dict:
    """Known-vs-unseen detection of the KL and novelty scores, and the rule's rejection rates.

    Parameters
    ----------
    known, unseen : Prediction
        `judge` results for known-class probes and for probes of unseen objects.

    Returns
    -------
    report : dict
        ``kl`` and ``novelty``: `ood_metrics` (AUROC, AUPR in/out, FPR95) with outlier scores ``-kl``
        and ``1 - p``; ``rule``: the share of known and of unseen probes the rule in force rejects,
        and the unseen ones rejected as "doubtful" and as "unseen".
    """
    return {
        "n_unseen": int(len(unseen.kl)),
        "kl": ood_metrics(-known.kl, -unseen.kl),
        "novelty": ood_metrics(1.0 - known.novelty, 1.0 - unseen.novelty),
        "rule": {
            "known_rejection_rate": float(np.mean(known.rejected)),
            "unseen_rejection_rate": float(np.mean(unseen.rejected)),
            "unseen_rejected_doubtful": float(np.mean(unseen.reasons == "doubtful")),
            "unseen_rejected_unseen": float(np.mean(unseen.reasons == "unseen")),
        },
    }


def baseline_predictions(baseline, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The softmax baseline's labels (as str, comparable with the data set's class names) and its maximum
    softmax probability (the confidence) for every probe of `dataset`."""
    labels = np.asarray([str(c) for c in baseline.classes_])
    proba = baseline.predict_proba(dataset.X)
    return labels[proba.argmax(axis=1)], proba.max(axis=1)


def baseline_report(
    baseline, dataset: Dataset, rejection_rates: dict[str, float], unseen: Optional[Dataset] = None
) -> dict:
    """The softmax baseline on the same probes by the same metrics, its max-softmax as the confidence.

    ``at_rejection_rate_of[name]`` rejects the same share of probes (the least confident) as the rule of
    model `name` did (`rejection_rates`), so the selective accuracies compare at equal coverage.
    """
    names = dataset.labels
    prediction, confidence = baseline_predictions(baseline, dataset)
    correct = prediction == names
    least_confident = np.argsort(confidence, kind="stable")

    def rejecting(rate: float) -> dict:
        rejected = np.zeros(len(names), dtype=bool)
        rejected[least_confident[: int(round(rate * len(names)))]] = True
        return {"rejection_rate_matched": float(rate), **selective_report(names, prediction, rejected)}

    report = {
        "kind": "softmax_baseline",
        "hidden_dims": [int(h) for h in baseline.hidden_dims],
        "epochs": int(baseline.epochs),
        "accuracy_no_rejection": float(np.mean(correct)),
        "risk_coverage_msp": risk_coverage_report(correct, confidence),
        "at_rejection_rate_of": {name: rejecting(rate) for name, rate in rejection_rates.items()},
    }
    if unseen is not None:
        report["unseen_msp"] = ood_metrics(1.0 - confidence, 1.0 - baseline.max_softmax(unseen.X))
    return report


@dataclass(frozen=True)
class EvaluationScores:
    """Per-probe results of one scoring pass over a labelled set (and an optional unseen one): every
    report and figure of an evaluation derives from these, so no probe is scored twice."""

    y_true: np.ndarray
    decision: Decision
    verdict: Prediction
    unseen: Optional[Prediction] = None

    @property
    def correct(self) -> np.ndarray:
        """Whether each labelled probe's class (before rejection) is its true class."""
        return self.decision.class_index == self.y_true


def score_for_evaluation(
    model, dataset: Dataset, progress: Optional[ProgressCallback] = None, unseen: Optional[Dataset] = None,
    backend=None,
) -> EvaluationScores:
    """Score the labelled probes (and the `unseen` ones) once; `backend` (e.g. "dask:tcp://HOST:PORT")
    shards the probes over workers."""
    y_true = true_class_index(model, dataset)
    decision = model.decide(dataset.X, progress=progress, backend=backend)
    verdict = model.judge(decision)
    other = None if unseen is None else model.predict_with_rejection(unseen.X, progress=progress, backend=backend)
    return EvaluationScores(y_true, decision, verdict, other)


def calibration_shift(model, kl) -> Optional[dict]:
    """`score_shift` of these probes' KL scores against the calibration sample; None for models calibrated before
    the sample was stored (or never)."""
    sample = (getattr(model, "calibration_report_", None) or {}).get("kl_sample")
    if not sample:
        return None
    return score_shift(sample, kl, threshold=model.rejection_rule().kl_threshold)


def evaluation_report(
    model, dataset: Dataset, scores: EvaluationScores, thresholds: Sequence[float],
    unseen: Optional[Dataset] = None, baseline=None,
) -> dict:
    """Accuracy, the Acc/P_miss table over KL thresholds, risk–coverage with KL as confidence, the
    model's own rejection rule, the confusion matrix, and with `unseen` (the set `scores.unseen` came
    from) the unseen-object report; a fitted `baseline` (`SoftmaxBaseline`) adds `baseline_report`
    under "baseline"."""
    y_true, decision, verdict, correct = scores.y_true, scores.decision, scores.verdict, scores.correct
    prediction = decision.class_index
    report = {
        "n_probes": int(len(y_true)),
        "accuracy_no_rejection": float(np.mean(correct)),
        "threshold_table": threshold_table(y_true, prediction, decision.kl, list(thresholds)),
        "risk_coverage_kl": risk_coverage_report(correct, decision.kl),
        "calibrated": getattr(model, "calibrated_rule_", None) is not None,
        "calibration": calibration_summary(model),
        "score_shift": calibration_shift(model, decision.kl),
        "with_model_rule": {**model.rejection_rule().to_dict(), **selective_report(y_true, prediction, verdict.rejected)},
        "rejected_doubtful": int(np.sum(verdict.reasons == "doubtful")),
        "rejected_unseen": int(np.sum(verdict.reasons == "unseen")),
        "mean_vae_evaluations": float(np.mean(decision.n_vae_evaluations)),
        "classes": [str(c) for c in model.classes_],
        "confusion_matrix": confusion_matrix(y_true, prediction, len(model.classes_)).tolist(),
    }
    if scores.unseen is not None:
        report["unseen"] = {"source": str(unseen.source) if unseen is not None else None,
                            **unseen_report(verdict, scores.unseen)}
    if baseline is not None:
        report["baseline"] = baseline_report(baseline, dataset, {"model": float(np.mean(verdict.rejected))}, unseen)
    return report

