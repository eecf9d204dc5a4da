"""The re-generation classifiers with a scikit-learn API, and what changes a fitted one.

`base`: `BaseRegenClassifier` (parameters, the fit template, decide / judge); `selective`: the public API
of anything that decides and judges (predict with and without rejection, calibration, save / load); `outputs`:
`Decision` and `Prediction`; `keys`: VAE keys and training seeds; `flat`, `tree`, `ensemble`: the three estimators; `registry`: them by the kind a model folder records; `conformal_sets`:
`conformalize` / `predict_p` / `predict_set`; `incremental`: adding and removing a class; `self_training`:
rejection-gated self-training.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "BaseRegenClassifier": "regentree.estimators.base",
    "Decision": "regentree.estimators.outputs",
    "Prediction": "regentree.estimators.outputs",
    "FlatRegenClassifier": "regentree.estimators.flat",
    "TreeRegenClassifier": "regentree.estimators.tree",
    "RegenEnsemble": "regentree.estimators.ensemble",
    "ESTIMATORS": "regentree.estimators.registry",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["BaseRegenClassifier", "Decision", "ESTIMATORS", "FlatRegenClassifier", "Prediction", "RegenEnsemble", "TreeRegenClassifier"]
