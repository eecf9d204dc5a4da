"""Evaluation of a fitted model on a labelled data set: one scoring pass, every report derived from it."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from regentree.data import Dataset
from regentree.errors import InvalidInputError
from regentree.metrics import confusion_matrix, selective_report, threshold_table
from regentree.progress import ProgressCallback


def true_class_index(model, dataset: Dataset) -> np.ndarray:
    """Indices into `model.classes_` of the data set's labels; unknown labels raise `InvalidInputError`."""
    model_classes = [str(c) for c in model.classes_]
    position = {name: i for i, name in enumerate(model_classes)}
    names = [str(n) for n in dataset.class_names]
    unknown = sorted({names[i] for i in np.unique(dataset.y)} - set(position))
    if unknown:
        raise InvalidInputError(
            f"{dataset.source}: labels {unknown[:5]} are not classes of the model (it knows {model_classes[:10]}...)"
        )
    lookup = np.array([position.get(n, -1) for n in names])
    return lookup[dataset.y]


def evaluate_model(
    model, dataset: Dataset, thresholds: Sequence[float], progress: Optional[ProgressCallback] = None
) -> dict:
    """Accuracy, the Acc/P_miss table over KL thresholds, the model's own rejection rule and the confusion matrix."""
    y_true = true_class_index(model, dataset)
    decision = model.decide(dataset.X, progress=progress)
    prediction = decision.class_index
    verdict = model.judge(decision)
    return {
        "n_probes": int(len(y_true)),
        "accuracy_no_rejection": float(np.mean(prediction == y_true)),
        "threshold_table": threshold_table(y_true, prediction, decision.kl, list(thresholds)),
        "with_model_rule": {**model.rejection_rule().to_dict(), **selective_report(y_true, prediction, verdict.rejected)},
        "rejected_doubtful": int(np.sum(verdict.reasons == "doubtful")),
        "rejected_unseen": int(np.sum(verdict.reasons == "unseen")),
        "mean_vae_evaluations": float(np.mean(decision.n_vae_evaluations)),
        "classes": [str(c) for c in model.classes_],
        "confusion_matrix": confusion_matrix(y_true, prediction, len(model.classes_)).tolist(),
    }
