"""Re-generation classifiers with a scikit-learn API."""

from regentree.estimators.base import BaseRegenClassifier, Decision, Prediction
from regentree.estimators.flat import FlatRegenClassifier
from regentree.estimators.ensemble import RegenEnsemble
from regentree.estimators.tree import TreeRegenClassifier

ESTIMATORS = {"flat": FlatRegenClassifier, "tree": TreeRegenClassifier, "ensemble": RegenEnsemble}

__all__ = ["BaseRegenClassifier", "Decision", "ESTIMATORS", "FlatRegenClassifier", "Prediction", "RegenEnsemble", "TreeRegenClassifier"]
