"""Rejection-gated self-training: grow each class's VAE data with the unlabelled probes it keeps confidently.

With few labels, a re-generation classifier is trained on the labelled images, then classifies a pool of
unlabelled images; only the probes whose KL(P_first || P_second) clears `kl_threshold` (the paper's
rejection rule, so "doubtful" probes never enter) are added, with their predicted class, to that
class's training data, and the VAEs are re-trained from scratch. Rounds repeat the selection over the
whole pool with the latest model, so a probe kept in one round may be dropped in the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from sklearn.base import clone

from regentree.data import validate_images
from regentree.errors import ConfigError, InvalidInputError
from regentree.progress import ProgressCallback


@dataclass
class SelfTrainingResult:
    """The self-trained model and what each round added.

    Attributes
    ----------
    model : fitted estimator
        Trained on the labelled images plus the pseudo-labelled probes of the last round.
    pseudo_index : ndarray of shape (n_added,)
        Indices into the unlabelled pool of the probes added in the last round.
    pseudo_labels : ndarray of shape (n_added,)
        Their predicted labels (values of `model.classes_`).
    rounds : list of dict
        Per round: ``n_added``, ``added_per_class`` (label -> count) and ``kept_fraction`` of the pool.
    """

    model: object
    pseudo_index: np.ndarray
    pseudo_labels: np.ndarray
    rounds: list = field(default_factory=list)


def select_confident(kl: np.ndarray, class_index: np.ndarray, kl_threshold: float,
                     max_per_class: Optional[int] = None) -> np.ndarray:
    """Indices of the probes kept by the KL rule, at most `max_per_class` per predicted class (highest KL first).

    Parameters
    ----------
    kl : ndarray of shape (n_probes,)
    class_index : ndarray of int of shape (n_probes,)
    kl_threshold : float
        A probe is kept when ``kl >= kl_threshold`` (the complement of the paper's rejection, eq. 6).
    max_per_class : int, optional

    Returns
    -------
    ndarray of int of shape (n_kept,), sorted
    """
    kept = np.flatnonzero(kl >= kl_threshold)
    if max_per_class is None:
        return kept
    chosen = []
    for c in np.unique(class_index[kept]):
        members = kept[class_index[kept] == c]
        chosen.append(members[np.argsort(-kl[members], kind="stable")[:max_per_class]])
    return np.sort(np.concatenate(chosen)) if chosen else kept


def self_train(
    estimator,
    X_labelled,
    y_labelled,
    X_unlabelled,
    *,
    kl_threshold: float = 10.0,
    max_per_class: Optional[int] = None,
    n_rounds: int = 1,
    initial=None,
    image_shape: Optional[tuple[int, int]] = None,
    progress: Optional[ProgressCallback] = None,
) -> SelfTrainingResult:
    """Train on labelled images, then re-train with the confidently classified unlabelled probes added.

    With a base VAE (`base_epochs` > 0 or "auto") it learns from the labelled and the whole unlabelled pool once;
    every re-training starts its VAEs from that same base.

    Parameters
    ----------
    estimator : FlatRegenClassifier or TreeRegenClassifier
        Template; cloned (unfitted) for every training, so its parameters are used unchanged.
    X_labelled : array-like of shape (n_labelled, n_features)
    y_labelled : array-like of shape (n_labelled,)
    X_unlabelled : array-like of shape (n_unlabelled, n_features)
        The pool of images without labels.
    kl_threshold : float
        Pseudo-labels are taken only from probes with KL(P_first || P_second) >= this.
    max_per_class : int, optional
        Cap on the pseudo-labelled probes added to one class per round (highest KL first).
    n_rounds : int
        Select-and-retrain rounds, at least 1.
    initial : fitted estimator, optional
        The model already fitted on the labelled images (skips that first training).
    image_shape : (height, width), optional
        Passed to `fit`.
    progress : callable, optional
        Receives the `ProgressEvent`s of training and scoring.

    Returns
    -------
    SelfTrainingResult
    """
    if int(n_rounds) < 1:
        raise ConfigError(f"self_train: n_rounds must be at least 1, got {n_rounds}")
    X_labelled = validate_images(X_labelled, name="X_labelled")
    X_unlabelled = validate_images(X_unlabelled, name="X_unlabelled")
    y_labelled = np.asarray(y_labelled)
    if X_unlabelled.shape[1] != X_labelled.shape[1]:
        raise InvalidInputError(
            f"self_train: X_unlabelled has {X_unlabelled.shape[1]} features, X_labelled {X_labelled.shape[1]}"
        )
    model = initial if initial is not None else clone(estimator).fit(
        X_labelled, y_labelled, X_unlabelled=X_unlabelled if estimator.base_epochs else None,
        image_shape=image_shape, progress=progress)
    base_from = model if getattr(model, "base_vae_", None) is not None else None  # one base for every round
    rounds = []
    index = np.empty(0, dtype=np.int64)
    labels = y_labelled[:0]
    for _ in range(int(n_rounds)):
        decision = model.decide(X_unlabelled, progress=progress)
        index = select_confident(decision.kl, decision.class_index, kl_threshold, max_per_class)
        labels = model.classes_[decision.class_index[index]]
        names, counts = np.unique(labels, return_counts=True)
        rounds.append({
            "n_added": int(len(index)),
            "added_per_class": {str(n): int(c) for n, c in zip(names, counts)},
            "kept_fraction": float(len(index) / max(len(X_unlabelled), 1)),
        })
        model = clone(estimator).fit(
            np.concatenate([X_labelled, X_unlabelled[index]]),
            np.concatenate([y_labelled, labels.astype(y_labelled.dtype)]),
            base_from=base_from,
            image_shape=image_shape or getattr(model, "image_shape_", None),
            progress=progress,
        )
    return SelfTrainingResult(model=model, pseudo_index=index, pseudo_labels=labels, rounds=rounds)
