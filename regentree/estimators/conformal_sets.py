"""Conformal prediction sets of a re-generation classifier: `conformalize`, `predict_p`, `predict_set`.

The score of probe x under class c is the decision statistic of its distances under class c's VAE
(`class_scores` of `decide`). `conformalize(X_cal, y_cal)` records those scores of labelled images
the VAEs never saw; without it the VAEs' own held-out images (the novelty references) serve, which
also chose each VAE's best epoch, so there the guarantee is approximate (docs/how-it-works.md).
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np

from regentree.data.validation import class_indices
from regentree.rejection.conformal import check_confidence, mondrian_p_values, prediction_sets
from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.progress import ProgressCallback

CONFORMAL_SETUP = ("distance", "decision", "noise_variance", "n_regenerations")
"""Scoring parameters the conformal scores depend on; scores recorded under one setting do not apply to another."""


class ConformalMixin:
    """Class-conditional conformal p-values and prediction sets for a host that can `decide` probes."""

    def _conformal_setup(self) -> dict:
        return {name: getattr(self, name) for name in CONFORMAL_SETUP}

    def class_distortions(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """The decision statistic of every probe under every class VAE, shape (n_probes, n_classes).

        Always from all K draws: adaptive K gives settled probes fewer draws, whose statistics would not be
        exchangeable with scores recorded from K draws.
        """
        host = self
        if getattr(self, "adaptive", False):
            host = copy.copy(self)
            host.adaptive = False
        return host.decide(X, progress=progress).class_scores

    def conformalize(self, X_cal, y_cal, *, progress: Optional[ProgressCallback] = None):
        """Record the conformal scores of labelled calibration images, unseen in training; returns self.

        Sets `conformal_scores_` (one sorted array per class of the true-class distortions) used by
        `predict_p` and `predict_set`. Every class needs at least one calibration image. The scores live
        in memory only: `save` does not keep them, so call it again after `load`.
        """
        self._check_fitted()
        scores = self.class_distortions(X_cal, progress=progress)
        y_index = class_indices(self.classes_, y_cal, where="y_cal")
        if len(y_index) != len(scores):
            raise InvalidInputError(f"y_cal has {len(y_index)} labels for {len(scores)} probes in X_cal")
        missing = [str(c) for i, c in enumerate(self.classes_) if not np.any(y_index == i)]
        if missing:
            raise InvalidInputError(f"y_cal has no image of class {missing[0]!r}; every class needs calibration images")
        self.conformal_scores_ = [np.sort(scores[y_index == c, c]) for c in range(len(self.classes_))]
        self.conformal_setup_ = {**self._conformal_setup(), "classes": [str(c) for c in self.classes_]}
        return self

    def _conformal_calibration(self) -> list[np.ndarray]:
        """Per class the calibration scores in force: `conformalize`'s, else the novelty references."""
        if getattr(self, "conformal_scores_", None) is not None:
            if self.conformal_setup_ != {**self._conformal_setup(), "classes": [str(c) for c in self.classes_]}:
                raise ConfigError("the conformal scores were recorded with other classes or scoring parameters; "
                                  "set them back or call conformalize again")
            return self.conformal_scores_
        if not hasattr(self, "novelty_reference_"):
            raise NotFittedError(f"this {type(self).__name__} has no conformal scores; call conformalize(X_cal, y_cal)")
        if self.novelty_reference_.mismatch(self._scoring_config()):
            raise ConfigError("the novelty references were recorded with other scoring parameters; set them back "
                              "or call conformalize(X_cal, y_cal)")
        keys = self.winner_key(np.arange(len(self.classes_)))
        empty = [str(self.classes_[c]) for c, k in enumerate(keys) if len(self.reference_distortions_[k]) == 0]
        if empty:
            raise NotFittedError(f"class {empty[0]!r} has no held-out images (validation_fraction 0); "
                                 f"call conformalize(X_cal, y_cal)")
        return [self.reference_distortions_[k] for k in keys]

    def conformal_source(self) -> str:
        """Which images calibrate the p-values: "conformalize" (exchangeable) or "novelty references" (approximate)."""
        return "conformalize" if getattr(self, "conformal_scores_", None) is not None else "novelty references"

    def p_values_from_distortions(self, distortions) -> np.ndarray:
        """Conformal p-values of `class_distortions` output (n_probes, n_classes), e.g. a flat `decide`'s class scores."""
        self._check_fitted()
        return mondrian_p_values(self._conformal_calibration(), distortions)

    def predict_p(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Class-conditional conformal p-values, shape (n_probes, n_classes); small = atypical for that class."""
        self._check_fitted()
        self._conformal_calibration()  # fails before any scoring
        return self.p_values_from_distortions(self.class_distortions(X, progress=progress))

    def predict_set(self, X, confidence: float = 0.9, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Boolean (n_probes, n_classes): the classes (columns as in `classes_`) whose p-value exceeds 1 - confidence.

        Each set holds the true class with probability >= `confidence`, per class and overall, when the
        probes are exchangeable with the calibration images; an empty set means no class fits (unseen).
        """
        check_confidence(confidence)  # before any scoring
        return prediction_sets(self.predict_p(X, progress=progress), confidence)
