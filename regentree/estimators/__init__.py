"""Re-generation classifiers with a scikit-learn API."""

from regentree.estimators.base import BaseRegenClassifier, Decision, Prediction
from regentree.estimators.flat import FlatRegenClassifier

ESTIMATORS = {"flat": FlatRegenClassifier}

__all__ = ["BaseRegenClassifier", "Decision", "ESTIMATORS", "FlatRegenClassifier", "Prediction"]
