"""The public API of any estimator that can `decide` and `judge` probes: predictions with and without rejection.

Single models (`BaseRegenClassifier`) and pooled ones (`RegenEnsemble`) share it: the rule in force and its
calibration, class probabilities, conformal sets, sharded scoring over a backend, saving and loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from regentree.backends.registry import make_backend
from regentree.errors import ModelFolderError
from regentree.estimators.conformal_sets import ConformalMixin
from regentree.estimators.outputs import Decision, Prediction
from regentree.progress import ProgressCallback, within
from regentree.rejection.calibration import calibration_summary
from regentree.rejection.thresholds import RejectionRule

FIT_CALIBRATION_SOURCE = "fit"
"""`calibration_report_["source"]` of thresholds set by `fit` on its held-out split (see `calibrates_at_fit`)."""

PROBES_PER_SHARD = 512  # probes per scoring task when a backend shards a probe set

PAPER_KL_THRESHOLD = 5.0
"""The paper's fixed KL threshold: in force for kl_threshold="auto" when nothing was calibrated."""


def _decide_shard(X: np.ndarray, model: "SelectiveClassifierMixin") -> Decision:
    """Decision for one shard of validated probes: the picklable task of sharded scoring."""
    return model._decide(X, None)


class SelectiveClassifierMixin(ConformalMixin):
    """The public API of any estimator that can `decide` and `judge` probes: prediction with and without
    rejection, class probabilities, conformal sets (`ConformalMixin`), the rejection rule in force and its
    calibration, saving and loading.

    The host provides `_validate_probes`, `_decide`, `_probes_per_chunk`, `judge`, `_check_fitted`,
    `classes_`, `n_jobs`, `kl_threshold` and `novelty_threshold`.
    """

    def rejection_rule(self) -> RejectionRule:
        """The rule in force: a `calibrate` call's thresholds, else the constructor's.

        kl_threshold="auto" is the threshold `fit` calibrated for `rejection_target`, or the paper's 5
        when nothing was; an explicit number (also one set after `fit`) overrides it.
        """
        calibrated = getattr(self, "calibrated_rule_", None)
        if calibrated is not None and not self._calibrated_by_fit():
            return calibrated
        kl_threshold = self.kl_threshold
        if kl_threshold == "auto":
            kl_threshold = PAPER_KL_THRESHOLD if calibrated is None else calibrated.kl_threshold
        return RejectionRule(kl_threshold=kl_threshold, novelty_threshold=self.novelty_threshold)

    def _calibrated_by_fit(self) -> bool:
        """Whether the calibrated thresholds are those `fit` set (a KL threshold for kl_threshold="auto")."""
        report = getattr(self, "calibration_report_", None) or {}
        return report.get("source") == FIT_CALIBRATION_SOURCE

    def calibrate(self, X_cal, y_cal, *, max_rejection: Optional[float] = None,
                  max_selective_error: Optional[float] = None, rule: str = "kl",
                  confidence: Optional[float] = None, progress: Optional[ProgressCallback] = None):
        """Choose the rejection thresholds for a target on a labelled calibration split.

        Sets `calibrated_rule_` (then in force, and saved with the model) and `calibration_report_`;
        see `regentree.rejection.calibration.choose_thresholds` for the targets and `rule` ("kl", "novelty",
        "both"). With `confidence` (e.g. 0.95) a `max_rejection` target holds for new probes with that
        probability. `X_cal` is (n_probes, n_features), `y_cal` (n_probes,) of labels in `classes_`.
        Returns self.
        """
        from regentree.rejection.calibration import calibrate_model

        return calibrate_model(self, X_cal, y_cal, max_rejection=max_rejection,
                               max_selective_error=max_selective_error, rule=rule, confidence=confidence,
                               progress=progress)

    def rejection_origin(self) -> dict:
        """Where the rule in force comes from: {"how": "fixed"}, or "calibrated" with its source, target and probes.

        The source is "fit" (`rejection_target`, on the split `fit` held out) or "calibrate" (a `calibrate` call).
        """
        report = getattr(self, "calibration_report_", None)
        overridden = self._calibrated_by_fit() and self.kl_threshold != "auto"
        if getattr(self, "calibrated_rule_", None) is None or not report or overridden:
            return {"how": "fixed"}
        return {"how": "calibrated", "source": report.get("source", "calibrate"),
                **{key: report.get(key) for key in ("rule", "max_rejection", "max_selective_error", "confidence",
                                                    "n_calibration")}}

    def _summary_head(self) -> dict:
        """The first entries of `summary()`: kind, classes, image shape and the rejection rule in force."""
        rule = self.rejection_rule()
        return {
            "kind": self.kind,
            "n_classes": len(self.classes_),
            "classes": [str(c) for c in self.classes_],
            "image_shape": list(self.image_shape_),
            "rejection": {"kl_threshold": rule.kl_threshold, "novelty_threshold": rule.novelty_threshold,
                          "calibrated": getattr(self, "calibrated_rule_", None) is not None,
                          "origin": self.rejection_origin(),
                          "calibration": calibration_summary(self) or None},
        }

    def _fitted_state_head(self, params: dict) -> dict:
        """The `FittedState` fields every estimator fills alike: kind, `params`, classes, image size, the rule in
        force and its calibration."""
        calibrated = getattr(self, "calibrated_rule_", None)
        return {"kind": self.kind, "params": params, "classes": self.classes_, "n_features": int(self.n_features_in_),
                "image_shape": tuple(self.image_shape_), "rejection": self.rejection_rule().to_dict(),
                "calibrated_rule": None if calibrated is None else calibrated.to_dict(),
                "calibration": getattr(self, "calibration_report_", None)}

    def _adopt_calibration(self, state) -> None:
        """The calibrated rule and its report from a `FittedState`, if it holds one."""
        if state.calibrated_rule is not None:
            self.calibrated_rule_ = RejectionRule.from_dict(state.calibrated_rule)
            self.calibration_report_ = state.calibration

    def save(self, path) -> Path:
        """Write the fitted model (flat, tree or ensemble) to folder `path` atomically (see `regentree.persistence.model_folder`)."""
        from regentree.persistence.model_folder import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path):
        """Read a model folder; raises `ModelFolderError` if it holds another kind of model."""
        from regentree.persistence.model_folder import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ModelFolderError(f"{path}: holds a {model.kind} model, not a {cls.__name__}")
        return model

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.classifier_tags.poor_score = True
        return tags

    def predict_with_rejection(
        self, X, *, explain: bool = False, progress: Optional[ProgressCallback] = None, backend=None
    ) -> Prediction:
        """Labels plus the rejection verdict ("doubtful" by KL, "unseen" by novelty) and its evidence.

        `backend` (e.g. "dask:tcp://HOST:PORT") shards the probes across workers; see `decide`.
        """
        prediction = self.judge(self.decide(X, progress=progress, backend=backend))
        if not explain:
            prediction.trace = None
        return prediction

    def decide(self, X, *, progress: Optional[ProgressCallback] = None, backend=None) -> Decision:
        """The raw decision (class index, KL, scores) for validated probes; for evaluation tools.

        With a `backend` (a spec such as "dask:local:2" or a backend object) the probes are split into
        shards of `PROBES_PER_SHARD` decided in parallel, the model shipped to each worker once; the
        fixed noise bank makes the result identical to the unsharded one.
        """
        X = self._validate_probes(X)
        if backend is None or len(X) == 0:
            return self._decide_in_chunks(X, progress)
        shards = [X[i : i + PROBES_PER_SHARD] for i in range(0, len(X), PROBES_PER_SHARD)]
        runner = make_backend(backend, n_workers=int(self.n_jobs))
        parts = runner.map(_decide_shard, shards, progress=progress, stage="scoring shards", shared={"model": self})
        return Decision.concatenate(parts)

    def _decide_in_chunks(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        """`_decide` over consecutive chunks of `_probes_per_chunk` probes, so that only one chunk's raw
        distances (n_chunk, n_vaes, K) exist at a time and peak memory stays flat in the number of probes;
        the fixed noise bank gives the decisions of all probes at once (scores equal up to float rounding)."""
        n, chunk = len(X), self._probes_per_chunk()
        parts = []
        for start in range(0, n, chunk):
            part = X[start : start + chunk]
            parts.append(self._decide(part, within(progress, start, len(part), n)))
        return parts[0] if len(parts) == 1 else Decision.concatenate(parts)

    def predict(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Most likely class of each probe (no rejection), shape (n_probes,)."""
        class_index = self.decide(X, progress=progress).class_index
        return self.classes_[class_index]

    def decision_function(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Confidence scores of the decision rule: minus each class's distortion (the `decision` statistic).

        Shape (n_probes, n_classes), argmax = `predict`; -inf for classes the rule did not weigh (tree mode:
        those routing left before its last comparison). Two classes: shape (n_probes,), the second class's
        score minus the first's, positive where the second class wins (scikit-learn's convention).
        """
        values = self._decision_values(self.decide(X, progress=progress))
        return values[:, 1] - values[:, 0] if values.shape[1] == 2 else values

    def _decision_values(self, decision: Decision) -> np.ndarray:
        """Minus the class scores of a `decide` result, -inf for classes it did not meet, (n_probes, n_classes)."""
        scores = decision.class_scores
        return np.where(np.isnan(scores), -np.inf, -scores.astype(np.float64))

    def predict_proba(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Class probabilities p(c | x) proportional to exp(-distortion), shape (n_probes, n_classes).

        The cross-entropy distortion is a negative log-likelihood of the probe under the class VAE,
        so a softmax of its negative is the posterior under equal priors: the softmax of the per-class
        scores of `decision_function`, so its argmax is `predict`; classes the rule did not weigh get 0.
        """
        logits = self._decision_values(self.decide(X, progress=progress))
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)
