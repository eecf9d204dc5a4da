"""regentree: classification by re-generation, flat or through a class tree, with rejection.

The sub-packages follow the path of a probe and of a training run:
`data` (datasets, input checks) -> `vae` (the model) -> `training` (fitting VAEs) -> `scoring`
(K re-generations -> distances) -> `rejection` (KL doubt, novelty, thresholds, conformal sets) ->
`tree` (class trees and routing, no torch) -> `estimators` (the scikit-learn classifiers) ->
`persistence` (model folders) -> `evaluation` (metrics, reports, plots) -> `cli`; `backends` says where
tasks run. Top-level modules are shared utilities: `errors`, `progress`, `limits`, `constraints`,
`strict_json`. Public names are imported lazily, so `import regentree` costs nothing until one is used.
"""

from regentree._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "FlatRegenClassifier": "regentree.estimators.flat",
    "TreeRegenClassifier": "regentree.estimators.tree",
    "RegenEnsemble": "regentree.estimators.ensemble",
    "load_model": "regentree.persistence.model_folder",
    "save_model": "regentree.persistence.model_folder",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["FlatRegenClassifier", "RegenEnsemble", "TreeRegenClassifier", "load_model", "save_model", "__version__"]
