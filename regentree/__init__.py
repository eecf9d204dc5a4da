"""regentree: classification by re-generation, flat or through a class tree, with rejection."""

__version__ = "0.1.0"

from regentree.estimators import FlatRegenClassifier, RegenEnsemble, TreeRegenClassifier  # noqa: E402
from regentree.persistence import load_model, save_model  # noqa: E402

__all__ = ["FlatRegenClassifier", "RegenEnsemble", "TreeRegenClassifier", "__version__", "load_model", "save_model"]
