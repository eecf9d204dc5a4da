"""The estimators by the `kind` a model folder records: "flat", "tree", "ensemble"."""

from regentree.estimators.ensemble import RegenEnsemble
from regentree.estimators.flat import FlatRegenClassifier
from regentree.estimators.tree import TreeRegenClassifier

ESTIMATORS = {"flat": FlatRegenClassifier, "tree": TreeRegenClassifier, "ensemble": RegenEnsemble}
