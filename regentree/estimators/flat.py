"""Flat mode: one VAE per class; every probe meets every VAE (paper, section III)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from regentree.errors import ModelFolderError
from regentree.estimators.base import BaseRegenClassifier, Decision
from regentree.progress import ProgressCallback
from regentree.rejection import first_second_kl
from regentree.scoring import summarize


class FlatRegenClassifier(BaseRegenClassifier):
    """Classification by re-generation with one VAE per class.

    Each probe is re-generated `n_regenerations` times by every class VAE; the class whose
    distances have the lowest `decision` statistic wins, and KL(P_first || P_second) between the
    two best distance distributions measures how clear the win is.

    Parameters
    ----------
    latent_dim, hidden_dims, architecture
        Shape of every VAE (paper: 15, (500, 500), "mlp").
    epochs, batch_size, learning_rate, validation_fraction, patience
        Training of each VAE (Adam, early stopping on the held-out share).
    n_regenerations : int
        K, re-generations per probe and VAE (paper: 300).
    noise_variance : float
        sigma^2 of the re-parameterisation noise at scoring time (paper: 1).
    distance : {"cross_entropy", "mse"}
    decision : {"mean", "median"}
        Statistic of the K distances that ranks the classes.
    kl_estimator : {"gaussian", "kde"}
    kl_threshold : float or None
        Reject as "doubtful" when KL(P_first || P_second) is below it; None switches the rule off.
    novelty_threshold : float or None
        Reject as "unseen" when the novelty p-value is below it; None switches the rule off.
    random_state : int
        Seeds training and the re-generation noise bank.
    device : str
        Torch device for training and scoring ("cpu", "cuda").
    backend : str
        Where the independent training tasks run ("local").
    n_jobs : int
        Worker processes of the local backend.
    memory_budget_mb : float
        Bound on the scorer's intermediate tensors per chunk of probes.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    vaes_ : dict of str -> VAE
        One fitted VAE per class, keyed by `vae_keys_`.
    vae_keys_ : list of str
        Key of each class's VAE, aligned with `classes_`.
    vae_classes_ : dict of str -> list of int
    reference_distortions_ : dict of str -> ndarray
        Held-out distortions of each VAE's own class (novelty reference).
    training_info_ : dict of str -> dict
    n_features_in_ : int
    image_shape_ : tuple of int
    """

    kind = "flat"

    def _vae_class_sets(self, n_classes: int, X: np.ndarray, y_index: np.ndarray) -> dict[str, list[int]]:
        self.vae_keys_ = [f"class_{i}" for i in range(n_classes)]
        return {key: [i] for i, key in enumerate(self.vae_keys_)}

    def winner_key(self, class_index: np.ndarray) -> list[str]:
        return [self.vae_keys_[c] for c in class_index]

    def class_distances(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Distances of every probe under every class VAE, shape (n_probes, n_classes, K)."""
        return self._distances(self.vae_keys_, self._validate_probes(X), progress)

    def _decide(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        distances = self._distances(self.vae_keys_, X, progress)
        return self._decide_from_distances(distances)

    def _decide_from_distances(self, distances: np.ndarray) -> Decision:
        """Ranking and KL from precomputed distances (n_probes, n_classes, K)."""
        scores = summarize(distances, self.decision)
        order = np.argsort(scores, axis=1, kind="stable")
        winner = order[:, 0]
        return Decision(
            class_index=winner,
            kl=first_second_kl(distances, order, estimator=self.kl_estimator),
            winner_distances=distances[np.arange(len(winner)), winner],
            class_scores=scores,
            n_vae_evaluations=np.full(len(winner), len(self.vae_keys_)),
        )

    def _manifest_extra(self) -> dict:
        return {"vae_keys": list(self.vae_keys_)}

    def _restore_extra(self, manifest: dict, tree, folder) -> None:
        keys = manifest.get("extra", {}).get("vae_keys")
        if not isinstance(keys, list) or len(keys) != len(self.classes_):
            raise ModelFolderError(f"{folder}/manifest.json: 'extra.vae_keys' must list one VAE key per class")
        unknown = [k for k in keys if k not in self.vaes_]
        if unknown:
            raise ModelFolderError(f"{folder}/manifest.json: class VAE {unknown[0]!r} has no entry under 'vaes'")
        self.vae_keys_ = keys
        super()._restore_extra(manifest, tree, folder)
