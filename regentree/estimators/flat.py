"""Flat mode: one VAE per class; every probe meets every VAE (paper, section III)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Optional

import numpy as np

from regentree.estimators.base import BaseRegenClassifier
from regentree.estimators.keys import class_key
from regentree.estimators.outputs import Decision
from regentree.estimators.incremental import (
    ClassUpdate, check_known_class, check_new_class, classes_with, fresh_key, transaction,
)
from regentree.progress import ProgressCallback
from regentree.rejection.kl import first_second_kl
from regentree.scoring.statistics import summarize

TRACE_CLOSEST = 5  # classes a flat decision trace lists per probe, closest first


class FlatRegenClassifier(BaseRegenClassifier):
    """Classification by re-generation with one VAE per class.

    Each probe is re-generated `n_regenerations` times by every class VAE; the class whose
    distances have the lowest `decision` statistic wins, and KL(P_first || P_second) between the
    two best distance distributions measures how clear the win is.

    Parameters
    ----------
    latent_dim, hidden_dims, architecture
        Shape of every VAE (paper: 15, (500, 500), "mlp").
    likelihood : {"auto", "bernoulli", "gaussian"}, default "auto"
        Decoder likelihood of every VAE (`regentree.vae.likelihood`). "bernoulli" (the paper's): pixels in
        [0, 1] (or integers 0..255), the distance "cross_entropy" is the Bernoulli cross-entropy. "gaussian":
        any real-valued features, standardised by the training mean and standard deviation (kept in each
        VAE's weights file), a learned per-feature variance; "cross_entropy" is then the Gaussian negative
        log-likelihood of the standardised probe. "auto" picks "bernoulli" when every training value is a pixel
        value, else "gaussian"; `likelihood_` says which.
    epochs, batch_size, learning_rate, validation_fraction, patience, learning_rate_schedule
        Training of each VAE (Adam, early stopping on the held-out share, "constant" or "cosine"
        learning rate; see `regentree.training.loop.TrainingConfig`).
    training_precision : {"float32", "bfloat16"}
        "bfloat16" trains with bfloat16 matrix products (float32 weights and loss): faster on CPUs
        with AMX / AVX-512 BF16 and on GPUs (`TrainingConfig.precision`). Scoring stays float32.
    base_epochs : int or "auto", default "auto"
        0 (the paper): every VAE starts from a random initialisation. N > 0: first train one base VAE
        for N epochs on all training images, also the unlabelled ones given to `fit`, and start every
        class VAE (tree: every node VAE; and a class added later) from its weights; helps when labels
        are few. "auto": a base VAE of 40 epochs (at most `epochs`) when the median class has fewer
        than 500 images or `fit` is given unlabelled images, else 0 (`AUTO_BASE_BELOW` says why).
    n_regenerations : int
        K, re-generations per probe and VAE (paper: 300); with `adaptive`, the most a probe gets.
    adaptive : bool
        Score in rounds and stop early on probes whose decision and KL verdict are settled
        (`regentree.scoring.adaptive` states the stopping rule); False scores every probe with K draws.
    n_regenerations_min : int
        Draws of the first adaptive round.
    adaptive_kl_band : (float, float) or None
        KL thresholds whose verdicts adaptive scoring must keep; None keeps only the threshold in
        force, (1, 20) keeps the paper's whole Acc/P_miss table (more draws, less speed).
    noise_variance : float
        sigma^2 of the re-parameterisation noise at scoring time (paper: 1).
    distance : {"cross_entropy", "mse", "neg_log_weight"}
        Per-draw distance (paper: cross-entropy); "neg_log_weight" adds log q(z|x) - log p(z) of the draw.
    decision : {"mean", "median", "likelihood"}
        Statistic of the K distances that ranks the classes (paper: mean). "likelihood" with the
        "neg_log_weight" distance ranks by the importance-weighted log-likelihood of the probe
        (`regentree.scoring.regeneration`), which measured more accurate on MNIST (docs/results.md).
    kl_estimator : {"gaussian", "kde"}
    kl_threshold : float, "auto" or None
        Reject as "doubtful" when KL(P_first || P_second) is below it; None switches the rule off. A
        number is an explicit override: `fit` then holds nothing out. "auto" (default): `fit` sets it
        from `rejection_target`, or it is the paper's 5 when `rejection_target` is None.
    novelty_threshold : float or None
        Reject as "unseen" when the novelty p-value is below it; None switches the rule off.
    rejection_target : float in (0, 1) or None
        With kl_threshold="auto", `fit` holds out a seeded stratified 10 % of the training images (at
        most 2,000, `regentree.rejection.calibration.calibration_split`) that no VAE trains on, and sets the KL
        threshold that rejects this share of them (default 0.05): a fixed KL threshold means a
        different rejection rate at every M, K and class size (docs/how-it-works.md). None: no
        hold-out, the paper's fixed threshold.
    random_state : int
        Seeds training and the re-generation noise bank.
    device : str
        Torch device for training and scoring ("cpu", "cuda", "cuda:N", "auto" = CUDA when present).
    backend : str
        Where the independent training tasks run ("local").
    n_jobs : int
        Worker processes of the local backend.
    memory_budget_mb : float
        Bound on the scorer's intermediate tensors per chunk of probes.
    scoring_precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the decoder's products at scoring time (sums stay float32). "auto" is bfloat16
        where the device multiplies it in hardware (CPUs with AMX or AVX512-BF16, GPUs of compute
        capability 8+), where it is several times faster than float32 and its decisions agree on nearly
        every probe (`benchmarks/performance.py --only scorer`); float32 elsewhere.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    vaes_ : dict of str -> VAE
        One fitted VAE per class, keyed by `vae_keys_`.
    vae_keys_ : list of str
        Key of each class's VAE, aligned with `classes_`.
    vae_classes_ : dict of str -> list of int
    novelty_reference_ : NoveltyReference
        Held-out distortions of each VAE's own class and the scoring setup they were recorded under
        (`regentree.rejection.novelty`); `reference_distortions_` is its dict of distortions by VAE key.
    training_info_ : dict of str -> dict
        Per VAE key, `regentree.training.loop.training_record`: epochs run, the kept epoch, seconds and the
        training / validation loss per epoch (drawn by `regentree info --plot`).
    base_vae_ : VAE or None
        The base VAE every class VAE started from (`base_epochs` > 0), else None.
    base_training_info_ : dict
    n_features_in_ : int
    image_shape_ : tuple of int
    likelihood_ : str
        The likelihood in force, "bernoulli" or "gaussian" ("auto" resolved on the training data).

    Notes
    -----
    `decision_function` is minus each class's distortion and `predict_proba` its softmax, so both rank the
    classes as `predict` does. `fit` takes no `sample_weight`: each VAE learns its own class alone and the
    classes are compared with equal priors, so weights between classes would change nothing, and weights
    within a class would need a weighted loss in every training path (the hand-derived MLP gradients, stacked
    training, early stopping, the novelty references); resample the images by weight instead.
    `pickle` and `joblib` copy a fitted model (to worker processes, into a cache), as scikit-learn users
    expect, but loading a pickle runs code: persist with `save` / `load_model`, a model folder of JSON and
    safetensors whose loading runs none.
    """

    kind = "flat"
    _fitted_attributes = (*BaseRegenClassifier._fitted_attributes, "vae_keys_")

    def _vae_class_sets(self, n_classes: int, X: np.ndarray, y_index: np.ndarray) -> dict[str, list[int]]:
        self.vae_keys_ = [class_key(i) for i in range(n_classes)]
        return {key: [i] for i, key in enumerate(self.vae_keys_)}

    def winner_key(self, class_index: np.ndarray) -> list[str]:
        return [self.vae_keys_[c] for c in class_index]

    def class_distances(self, X, *, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Distances of every probe under every class VAE, shape (n_probes, n_classes, K)."""
        return self._distances(self.vae_keys_, self._validate_probes(X), progress)

    def _decide(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        if self.adaptive:
            scored = self._adaptive_distances(self.vae_keys_, X, progress)
            return self._decide_from_distances(scored.distances, scored.n_used)
        distances = self._distances(self.vae_keys_, X, progress)
        return self._decide_from_distances(distances)

    def _decide_from_distances(self, distances: np.ndarray, n_used: Optional[np.ndarray] = None) -> Decision:
        return decide_from_distances(distances, self.classes_, self.decision, self.kl_estimator, n_used)

    # ----------------------------------------------------------------- adding and removing classes
    def add_class(self, X, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Learn a new class by training one new VAE; every other VAE stays as it is, byte for byte.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
            Images of the new class only (at least `min_samples`), of the model's image shape.
        label : int or str
            Name of the new class, of the same kind as `classes_` and not yet in it. It takes its
            sorted place in `classes_` (as if it had been there at `fit`); `vae_keys_` follows.
        progress : callable, optional
            Receives `ProgressEvent`s while the VAE trains.

        Returns
        -------
        ClassUpdate
            ``trained`` holds the one new VAE key (fresh, so its training seed was never used).

        Raises
        ------
        InvalidInputError
            The label exists or is of another kind than `classes_`, or `X` is empty, too small or
            of another image shape; the model is left unchanged.
        """
        started = time.perf_counter()
        X, index = check_new_class(self, X, label)
        key = fresh_key(self.vaes_, "class", len(self.vae_keys_))
        with transaction(self):
            self._train_vaes(X, np.full(len(X), index), {key: [index]}, progress)
            self.classes_ = classes_with(self.classes_, label, index)
            self.vae_keys_ = [*self.vae_keys_[:index], key, *self.vae_keys_[index:]]
            self.vae_classes_ = {k: [i] for i, k in enumerate(self.vae_keys_)}
        return ClassUpdate("add", label, (key,), (), time.perf_counter() - started)

    def remove_class(self, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Forget a class by dropping its VAE; nothing is trained and every other VAE stays as it is.

        `progress` is accepted for the signature tree models share (they re-train group VAEs); a flat
        removal has no long step to report.

        Raises
        ------
        InvalidInputError
            The label is not a class of the model, or only two classes are left.
        """
        started = time.perf_counter()
        index = check_known_class(self, label)
        key = self.vae_keys_[index]
        for table in (self.vaes_, self.training_info_):
            table.pop(key)
        self.novelty_reference_.drop(key)
        self.classes_ = np.delete(self.classes_, index)
        self.vae_keys_ = [k for k in self.vae_keys_ if k != key]
        self.vae_classes_ = {k: [i] for i, k in enumerate(self.vae_keys_)}
        return ClassUpdate("remove", label, (), (key,), time.perf_counter() - started)

    # ----------------------------------------------------------------- fitted state
    def _fitted_state(self):
        return replace(super()._fitted_state(), extra={"vae_keys": list(self.vae_keys_)})

    def _set_fitted_state(self, state) -> None:
        super()._set_fitted_state(state)
        keys = (state.extra or {}).get("vae_keys")
        if not isinstance(keys, list) or len(keys) != len(self.classes_):
            raise state.error("manifest", "'extra.vae_keys' must list one VAE key per class")
        unknown = [k for k in keys if k not in self.vaes_]
        if unknown:
            raise state.error("manifest", f"class VAE {unknown[0]!r} has no entry under 'vaes'")
        wrong = [i for i, key in enumerate(keys) if self.vae_classes_[key] != [i]]
        if wrong or len(set(keys)) != len(keys):
            index = wrong[0] if wrong else 0
            raise state.error("manifest", f"class {index} must have a VAE of its own, trained on it alone "
                                          "('extra.vae_keys' and the VAEs' 'classes' disagree)")
        self.vae_keys_ = list(keys)


def decide_from_distances(distances: np.ndarray, classes: np.ndarray, decision: str, kl_estimator: str,
                          n_used: Optional[np.ndarray] = None,
                          kl_of: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None) -> Decision:
    """Ranking and KL of probes that met every class, from distances (n_probes, n_classes, K).

    `n_used` (n_probes,) gives the draws of adaptively scored probes (NaN beyond); probes are
    ranked and their KL estimated on their own draws, in groups of equal draw count. `kl_of(distances,
    order)` replaces the KL of the two best classes' distributions (`first_second_kl`), e.g. by an ensemble's.
    """
    if kl_of is None:
        def kl_of(part, order):
            return first_second_kl(part, order, estimator=kl_estimator)
    if n_used is None:
        n_used = np.full(len(distances), distances.shape[2])
    scores = np.empty(distances.shape[:2], dtype=distances.dtype)
    order = np.empty(distances.shape[:2], dtype=np.int64)
    kl = np.empty(len(distances))
    for k in np.unique(n_used):
        rows = np.flatnonzero(n_used == k)
        part = distances[rows, :, :k]
        scores[rows] = summarize(part, decision)
        order[rows] = np.argsort(scores[rows], axis=1, kind="stable")
        kl[rows] = kl_of(part, order[rows])
    winner = order[:, 0]
    return Decision(
        class_index=winner,
        kl=kl,
        winner_distances=distances[np.arange(len(winner)), winner],
        class_scores=scores,
        n_vae_evaluations=np.full(len(winner), distances.shape[1]),
        trace=_trace(classes, decision, scores, order, kl, n_used),
    )


def _trace(classes: np.ndarray, decision: str, scores: np.ndarray, order: np.ndarray, kl: np.ndarray,
           n_used: np.ndarray) -> list:
    """Per probe one step: the `TRACE_CLOSEST` closest classes with their distortion, how many classes were
    met, the KL between the best two (the verdict's KL), the draws."""
    top = min(TRACE_CLOSEST, order.shape[1])
    return [
        [{
            "closest": [str(classes[c]) for c in order[i, :top]],
            f"{decision}_distance": [round(float(scores[i, c]), 3) for c in order[i, :top]],
            "n_classes": int(order.shape[1]),
            "kl_first_second": float(kl[i]),
            "draws": int(n_used[i]),
        }]
        for i in range(len(order))
    ]
