"""What flat and tree classifiers share: parameters, input validation, the fit template, scoring and `judge`.

A subclass says only which VAEs exist (`_vae_class_sets`) and how a probe meets them (`_decide`);
everything else (training tasks, the novelty reference, the rule in force, the state persistence reads) lives
here once; the public predict / calibrate / save API comes from `SelectiveClassifierMixin`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Union

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from regentree.scoring.adaptive import AdaptiveDistances
from regentree.constraints import BOOLEAN, NONE, STRING, Check, Interval, Options, Sequence, validate_params
from regentree.training.dispatch import run_training_tasks
from regentree.rejection.calibration import DEFAULT_REJECTION_TARGET, calibrate_model, calibration_split
from regentree.data import validate_labels
from regentree.data.validation import in_pixel_range, validate_features, validate_images
from regentree.backends.devices import SCORING_PRECISION_CHOICES, resolve_device, resolve_scoring_precision
from regentree.estimators.keys import BASE_KEY, task_seed
from regentree.estimators.outputs import Decision, Prediction
from regentree.estimators.selective import FIT_CALIBRATION_SOURCE, SelectiveClassifierMixin
from regentree.errors import ConfigError, InvalidInputError, NotFittedError
from regentree.persistence.fitted_state import FittedState, StoredVAE
from regentree.progress import ProgressCallback
from regentree.rejection.kl import KL_ESTIMATORS
from regentree.rejection.novelty import NoveltyReference, NoveltyScorer, describe_mismatch
from regentree.scoring.config import ScoringConfig
from regentree.scoring.regeneration import DISTANCES, chunk_size_for
from regentree.scoring.statistics import STATISTICS, summarize
from regentree.training.loop import (
    LEARNING_RATE_SCHEDULES,
    MIN_VALIDATED_SAMPLES,
    PRECISIONS,
    TrainedVAE,
    TrainingConfig,
    TrainingTask,
    build_vae,
    train_vae,
    training_record,
)
from regentree.vae.likelihood import LIKELIHOODS, fit_standardization, standardized
from regentree.vae.model import ARCHITECTURES, VAE, VAEConfig


# base_epochs="auto" trains a base VAE when the median class has fewer images than this (or unlabelled images
# are given): measured to lower the error at 60-300 labels per class (docs/results.md, Table V) and on the
# few-shot rows of benchmarks/large_label_sets.py; classes of thousands keep the paper's from-scratch VAEs
# (on all of MNIST a base VAE lowered accuracy: docs/benchmarks.md, rejection).
AUTO_BASE_BELOW = 500
AUTO_BASE_EPOCHS = 40  # epochs of an automatic base VAE (at most `epochs`): the value of those measurements

DECISION_COPIES = 4
"""Copies of a chunk's distances a decision holds at its peak: the distances, a float64 copy for the KL
(two), and the slice of each group of equal draw counts."""

INPUT_CHECKS = {False: validate_images, True: validate_features}
"""`Likelihood.real_valued` -> the check inputs pass: pixels in [0, 1] (Bernoulli), any finite values (Gaussian)."""


def _is_backend(value) -> bool:
    return isinstance(value, str) or callable(getattr(value, "map", None))


class BaseRegenClassifier(SelectiveClassifierMixin, ClassifierMixin, BaseEstimator):
    """Shared base of the re-generation classifiers (see `FlatRegenClassifier` for the parameters)."""

    kind = "base"
    _fitted_attributes: tuple[str, ...] = (
        "classes_", "n_features_in_", "image_shape_", "vaes_", "vae_classes_", "training_info_", "novelty_reference_",
        "base_vae_", "base_training_info_", "calibrated_rule_", "calibration_report_")
    """Every attribute `fit` sets: forgotten when a fit starts, all of them in `_fitted_state`."""
    vae_trainer = staticmethod(train_vae)
    """Trains one `TrainingTask` of `fit` and of add-class (``vae_trainer(task, device=..., progress=...)``);
    a subclass may name another (e.g. a reference implementation to time beside `train_vae`)."""
    _parameter_constraints: dict = {
        "latent_dim": [Interval("int", 1, "max_latent_dim")],
        "hidden_dims": [Sequence(Interval("int", 1, "max_hidden_dim"), 0, "max_hidden_layers")],
        "architecture": [Options(ARCHITECTURES)],
        "likelihood": [Options(("auto",)), Options(LIKELIHOODS)],
        "epochs": [Interval("int", 1, "max_epochs")],
        "batch_size": [Interval("int", 1, "max_batch_size")],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "validation_fraction": [Interval("real", 0, 1, closed="left")],
        "patience": [Interval("int", 0, "max_epochs")],
        "learning_rate_schedule": [Options(tuple(LEARNING_RATE_SCHEDULES))],
        "training_precision": [Options(tuple(PRECISIONS))],
        "base_epochs": [Interval("int", 0, "max_epochs"), Options(("auto",))],
        "n_regenerations": [Interval("int", 2, "max_regenerations")],
        "adaptive": [BOOLEAN],
        "n_regenerations_min": [Interval("int", 2, "max_regenerations")],
        "adaptive_kl_band": [NONE, Sequence(Interval("real", 0, None), 2, 2)],
        "noise_variance": [Interval("real", 0, None, closed="neither")],
        "distance": [Options(DISTANCES)],
        "decision": [Options(STATISTICS)],
        "kl_estimator": [Options(KL_ESTIMATORS)],
        "kl_threshold": [NONE, Options(("auto",)), Interval("real", 0, None, allow_inf=True)],
        "novelty_threshold": [NONE, Interval("real", 0, 1)],
        "rejection_target": [NONE, Interval("real", 0, 1, closed="neither")],
        "random_state": [Interval("int", 0, 2**32 - 1)],
        "device": [STRING],
        "backend": [Check(_is_backend, "a backend name such as 'local' or 'dask:tcp://HOST:PORT'")],
        "n_jobs": [Interval("int", 1, "max_count")],
        "memory_budget_mb": [Interval("real", 0, None, closed="neither")],
        "scoring_precision": [Options(SCORING_PRECISION_CHOICES)],
    }

    def __init__(
        self,
        latent_dim: int = 15,
        hidden_dims: tuple[int, ...] = (500, 500),
        architecture: str = "mlp",
        likelihood: str = "auto",
        epochs: int = 100,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        validation_fraction: float = 0.1,
        patience: int = 10,
        learning_rate_schedule: str = "constant",
        training_precision: str = "float32",
        base_epochs="auto",
        n_regenerations: int = 300,
        adaptive: bool = False,
        n_regenerations_min: int = 16,
        adaptive_kl_band: Optional[tuple[float, float]] = None,
        noise_variance: float = 1.0,
        distance: str = "cross_entropy",
        decision: str = "mean",
        kl_estimator: str = "gaussian",
        kl_threshold: Union[float, str, None] = "auto",
        novelty_threshold: Optional[float] = None,
        rejection_target: Optional[float] = DEFAULT_REJECTION_TARGET,
        random_state: int = 0,
        device: str = "cpu",
        backend: str = "local",
        n_jobs: int = 1,
        memory_budget_mb: float = 64.0,
        scoring_precision: str = "auto",
    ):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.architecture = architecture
        self.likelihood = likelihood
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.learning_rate_schedule = learning_rate_schedule
        self.training_precision = training_precision
        self.base_epochs = base_epochs
        self.n_regenerations = n_regenerations
        self.adaptive = adaptive
        self.n_regenerations_min = n_regenerations_min
        self.adaptive_kl_band = adaptive_kl_band
        self.noise_variance = noise_variance
        self.distance = distance
        self.decision = decision
        self.kl_estimator = kl_estimator
        self.kl_threshold = kl_threshold
        self.novelty_threshold = novelty_threshold
        self.rejection_target = rejection_target
        self.random_state = random_state
        self.device = device
        self.backend = backend
        self.n_jobs = n_jobs
        self.memory_budget_mb = memory_budget_mb
        self.scoring_precision = scoring_precision

    # ----------------------------------------------------------------- hooks for subclasses
    def _vae_class_sets(self, n_classes: int, X: np.ndarray, y_index: np.ndarray) -> dict[str, list[int]]:
        """Key -> class indices for every VAE to train (flat: one per class; tree: one per node)."""
        raise NotImplementedError

    def _decide(self, X: np.ndarray, progress: Optional[ProgressCallback]) -> Decision:
        """Route validated probes through the VAEs and pick a class for each."""
        raise NotImplementedError

    # ----------------------------------------------------------------- configuration
    def _vae_config(self, n_features: int) -> VAEConfig:
        return VAEConfig(
            input_dim=int(n_features),
            hidden_dims=tuple(self.hidden_dims),
            latent_dim=int(self.latent_dim),
            architecture=self.architecture,
            likelihood=self._vae_inputs()[0],
        )

    @property
    def likelihood_(self) -> str:
        """The decoder likelihood of the fitted VAEs, "bernoulli" or "gaussian": `likelihood` as `fit` resolved it."""
        self._check_fitted()
        return self._vae_inputs()[0]

    def _vae_inputs(self) -> tuple[str, Optional[tuple[np.ndarray, np.ndarray]]]:
        """(likelihood, input standardisation or None) of every VAE of this model: read from its VAEs once it has
        any (a loaded model, a class to add), else what `fit` resolved from the training data before training."""
        vae = next(iter(self.vaes_.values()), None) if hasattr(self, "vaes_") else None
        if vae is None:
            return self._fit_inputs
        if not vae.likelihood.real_valued:
            return vae.config.likelihood, None
        return vae.config.likelihood, (vae.input_shift.numpy().copy(), vae.input_scale.numpy().copy())

    def _resolve_likelihood(self, X) -> str:
        """The `likelihood` parameter for training data `X`: "auto" is "bernoulli" when `X` holds pixels (bool,
        integers 0..255 or floats in [0, 1], `in_pixel_range`), else "gaussian"."""
        if self.likelihood != "auto":
            return self.likelihood
        return "bernoulli" if in_pixel_range(X) else "gaussian"

    def _standardized(self, X: np.ndarray) -> np.ndarray:
        """Validated `X` as the model's VAEs see it (standardised under a Gaussian decoder), so that the tree's
        class-mean similarity weighs every feature alike whatever its units."""
        return standardized(X, self._vae_inputs()[1])

    def _check_inputs(self, X, *, name: str, image_shape=None, probes: bool = False) -> np.ndarray:
        """`X` through the input check of the model's likelihood (`INPUT_CHECKS`): float32 (n_samples, n_features).
        `probes` (not training data) of a Bernoulli model: floats outside [0, 1] are clipped with a warning."""
        real_valued = LIKELIHOODS[self._vae_inputs()[0]].real_valued
        if probes and not real_valued:
            return validate_images(X, name=name, image_shape=image_shape, clip=True)
        return INPUT_CHECKS[real_valued](X, name=name, image_shape=image_shape)

    def _training_config(self) -> TrainingConfig:
        return TrainingConfig(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            learning_rate=float(self.learning_rate),
            validation_fraction=float(self.validation_fraction),
            patience=int(self.patience),
            learning_rate_schedule=str(self.learning_rate_schedule),
            precision=str(self.training_precision),
        )

    def _check_params(self) -> None:
        """Every parameter against `_parameter_constraints`: one `ConfigError` naming the first wrong one."""
        validate_params(type(self).__name__, self.get_params(deep=False), self._parameter_constraints)

    # ----------------------------------------------------------------- validation
    def _check_fitted(self) -> None:
        if not hasattr(self, "vaes_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _validate_probes(self, X) -> np.ndarray:
        self._check_fitted()
        X = self._check_inputs(X, name="X", probes=True)
        if X.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                f"features as input (it was fitted on images of {self.image_shape_[0]}x{self.image_shape_[1]})"
            )
        return X

    def _validate_training_data(self, X, y, image_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if y is None:
            raise InvalidInputError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        raw_shape = X.shape if hasattr(X, "shape") else np.asarray(X).shape
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise InvalidInputError("y: Complex data not supported")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        y = validate_labels(y, raw_shape[0] if raw_shape else 0, name="y")
        try:
            check_classification_targets(y)
        except ValueError as exc:
            raise InvalidInputError(f"y: {exc}") from None
        classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise InvalidInputError(f"y has {len(classes)} class; classification needs at least 2 classes")
        likelihood = self._resolve_likelihood(X)
        X = INPUT_CHECKS[LIKELIHOODS[likelihood].real_valued](X, name="X")
        standardization = fit_standardization(X) if LIKELIHOODS[likelihood].real_valued else None
        self._fit_inputs = (likelihood, standardization)
        minimum = self._training_config().min_samples
        if counts.min() < minimum:
            small = classes[counts < minimum]
            raise InvalidInputError(
                f"class {small[0]!r} has {counts[counts < minimum][0]} samples; every class needs at least {minimum}"
            )
        if image_shape is None:
            side = int(round(X.shape[1] ** 0.5))
            square = (side, side) if side * side == X.shape[1] else (1, X.shape[1])
            image_shape = tuple(raw_shape[1:]) if len(raw_shape) == 3 else square
        if int(np.prod(image_shape)) != X.shape[1]:
            raise InvalidInputError(f"image_shape {tuple(image_shape)} does not match {X.shape[1]} features per sample")
        self.image_shape_ = tuple(int(s) for s in image_shape)
        return X, classes, y_index.astype(np.int64)

    # ----------------------------------------------------------------- training
    def _train_vaes(
        self, X: np.ndarray, y_index: np.ndarray, class_sets: dict[str, list[int]], progress: Optional[ProgressCallback]
    ) -> dict[str, TrainedVAE]:
        """Train one VAE per entry of `class_sets` as independent tasks (`regentree.training.dispatch`), each
        seeded by its key and started from the base VAE when there is one, and record them."""
        self.novelty_reference_.check_applies(self._scoring_config())  # before anything trains
        vae_config = self._vae_config(X.shape[1])
        training_config = self._training_config()
        start = None if self.base_vae_ is None else self.base_vae_.state_dict()
        standardization = self._vae_inputs()[1]
        tasks = [
            TrainingTask(key, vae_config, training_config, X[np.isin(y_index, classes)],
                         task_seed(self.random_state, key), initial_state=start, standardization=standardization)
            for key, classes in class_sets.items()
        ]
        results = run_training_tasks(tasks, backend=self.backend, n_jobs=int(self.n_jobs), device=self.device,
                                     progress=progress, train=self.vae_trainer)
        for task, result in zip(tasks, results):
            self.vaes_[task.key] = build_vae(vae_config, result.state_dict)
            self.vae_classes_[task.key] = list(class_sets[task.key])
            self.training_info_[task.key] = training_record(result, len(task.X))
            self.novelty_reference_.record(task.key, self._held_out_distortions(task.key, task.X[result.validation_index]))
        return results

    def base_epochs_for(self, y_index: np.ndarray, has_unlabelled: bool) -> int:
        """Epochs of the base VAE for these labels: `base_epochs`, or under "auto" AUTO_BASE_EPOCHS (at most
        `epochs`) when the median class has < AUTO_BASE_BELOW images or unlabelled images are given, else 0."""
        if self.base_epochs != "auto":
            return int(self.base_epochs)
        small = float(np.median(np.bincount(y_index))) < AUTO_BASE_BELOW
        return min(AUTO_BASE_EPOCHS, int(self.epochs)) if small or has_unlabelled else 0

    def _train_base_vae(self, X: np.ndarray, epochs: int, progress: Optional[ProgressCallback]) -> None:
        """Train `base_vae_`, the starting point of every class or node VAE, on all images `X` (labels unused)."""
        config = replace(self._training_config(), epochs=epochs)
        task = TrainingTask(BASE_KEY, self._vae_config(X.shape[1]), config, X, task_seed(self.random_state, BASE_KEY),
                            standardization=self._vae_inputs()[1])
        result = self.vae_trainer(task, progress=progress, device=self.device)
        self.base_vae_ = build_vae(task.vae_config, result.state_dict)
        self.base_training_info_ = training_record(result, len(X))

    def _held_out_distortions(self, key: str, X_val: np.ndarray) -> np.ndarray:
        """The decision statistic of VAE `key` on its own held-out samples `X_val`: its novelty reference."""
        if len(X_val) == 0:
            return np.empty(0)
        return summarize(self._distances([key], X_val), self.decision)[:, 0]

    @property
    def reference_distortions_(self) -> dict[str, np.ndarray]:
        """Per VAE key, the held-out distortions of `novelty_reference_`."""
        return self.novelty_reference_.distortions

    @property
    def reference_setup_(self) -> dict:
        """The scoring setup the novelty references were recorded under (`novelty_reference_.setup`)."""
        return self.novelty_reference_.setup

    def _forget_fitted(self) -> None:
        """Drop every fitted attribute (`_fitted_attributes`): nothing of an earlier fit survives, thresholds included."""
        for name in self._fitted_attributes:
            self.__dict__.pop(name, None)

    def _start_fit(self) -> None:
        """Check the parameters and forget any earlier fit; empty tables for the VAEs about to be trained."""
        self._check_params()
        self._forget_fitted()
        self.vaes_: dict[str, VAE] = {}
        self.vae_classes_: dict[str, list[int]] = {}
        self.training_info_: dict[str, dict] = {}
        self.novelty_reference_ = NoveltyReference.under(self._scoring_config())
        self.base_vae_: Optional[VAE] = None
        self.base_training_info_: dict = {}
        self._fit_inputs: tuple = ("bernoulli", None)  # until `fit` resolves them from the training data

    def fit(self, X, y, *, X_unlabelled=None, base_from: Optional["BaseRegenClassifier"] = None,
            image_shape: Optional[tuple[int, int]] = None, progress: Optional[ProgressCallback] = None):
        """Train the VAEs on labelled images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
            Pixels in [0, 1] (float) or 0..255 (integer).
        y : array-like of shape (n_samples,)
            Class labels (any hashable values).
        X_unlabelled : array-like of shape (n_unlabelled, n_features), optional
            Images without labels; with `base_epochs` > 0 the base VAE learns from them too.
        base_from : fitted estimator, optional
            A model whose base VAE (`base_vae_`, e.g. of an earlier fit on the same images) every VAE
            starts from; no base is trained.
        image_shape : (height, width), optional
            Shape of one image; inferred from 3-D `X` or a square feature count otherwise.
        progress : callable, optional
            Receives `ProgressEvent`s while training and scoring.

        Returns
        -------
        self
        """
        self._start_fit()
        X, classes, y_index = self._validate_training_data(X, y, image_shape)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        held_out = np.empty(0, dtype=np.int64)
        if self.calibrates_at_fit():
            at_least = max(self._training_config().min_samples, MIN_VALIDATED_SAMPLES)  # keeps novelty references
            kept, held_out = calibration_split(y_index, self.random_state, at_least)
            X, y_index, X_cal, y_cal = X[kept], y_index[kept], X[held_out], y_index[held_out]
        base_epochs = self.base_epochs_for(y_index, X_unlabelled is not None)
        if base_from is not None:
            self._take_base_vae(base_from)
        elif base_epochs:
            self._train_base_vae(self._with_unlabelled(X, X_unlabelled), base_epochs, progress)
        elif X_unlabelled is not None:
            raise ConfigError("X_unlabelled is used only by a base VAE; set base_epochs > 0 to train one")
        class_sets = self._vae_class_sets(len(classes), X, y_index)
        self._train_vaes(X, y_index, class_sets, progress)
        self._after_training(X, y_index, progress)
        if len(held_out):
            self._calibrate_on_held_out(X_cal, y_cal, progress)
        return self

    def calibrates_at_fit(self) -> bool:
        """Whether `fit` holds out a calibration split: a `rejection_target` and no explicit `kl_threshold`."""
        return self.kl_threshold == "auto" and self.rejection_target is not None

    def _calibrate_on_held_out(self, X_cal: np.ndarray, y_cal: np.ndarray, progress: Optional[ProgressCallback]) -> None:
        """Set the KL threshold rejecting `rejection_target` of the held-out probes (`novelty_threshold` stays on top)."""
        calibrate_model(self, X_cal, self.classes_[y_cal], max_rejection=float(self.rejection_target), rule="kl",
                        progress=progress)
        self.calibration_report_ = {**self.calibration_report_, "source": FIT_CALIBRATION_SOURCE}

    def _with_unlabelled(self, X: np.ndarray, X_unlabelled) -> np.ndarray:
        """`X` with the validated unlabelled images appended (the base VAE's training images)."""
        if X_unlabelled is None:
            return X
        X_unlabelled = self._check_inputs(X_unlabelled, name="X_unlabelled")
        if X_unlabelled.shape[1] != X.shape[1]:
            raise InvalidInputError(
                f"X_unlabelled has {X_unlabelled.shape[1]} features per image, X has {X.shape[1]}")
        return np.concatenate([X, X_unlabelled])

    def _take_base_vae(self, model: "BaseRegenClassifier") -> None:
        """Use `model`'s base VAE and its training record; a one-line `ConfigError` unless it fits this model."""
        base = getattr(model, "base_vae_", None)
        expected = self._vae_config(self.n_features_in_)
        if base is None or base.config != expected:
            found = "no base VAE" if base is None else f"a base VAE of config {base.config}"
            raise ConfigError(f"base_from must hold a base VAE of config {expected}; it has {found}")
        self.base_vae_, self.base_training_info_ = base, dict(model.base_training_info_)

    def _after_training(self, X: np.ndarray, y_index: np.ndarray, progress: Optional[ProgressCallback]) -> None:
        """Hook run after the VAEs are trained (the tree uses it; flat needs nothing)."""

    # ----------------------------------------------------------------- scoring
    def _scoring_config(self) -> ScoringConfig:
        """The scoring parameters as one frozen `ScoringConfig`, handed whole to scoring."""
        return ScoringConfig.from_params(self)

    def _vaes_held_per_probe(self) -> int:
        """VAEs whose K distances a decision holds per probe, `DECISION_COPIES` times over: every VAE (flat)."""
        return len(self.vaes_)

    def _probes_per_chunk(self) -> int:
        """Probes decided at once: `memory_budget_mb` holds the distances a decision keeps, `DECISION_COPIES` times."""
        config = next(iter(self.vaes_.values())).config
        width = max(config.input_dim, *config.hidden_dims)
        fit = chunk_size_for(self._vaes_held_per_probe(), int(self.n_regenerations), width, float(self.memory_budget_mb))
        return max(1, fit // DECISION_COPIES)

    def _distances(self, keys: list[str], X: np.ndarray, progress: Optional[ProgressCallback] = None) -> np.ndarray:
        """Distances (n_probes, len(keys), K) of probes `X` under the VAEs named by `keys`."""
        return self._scoring_config().distances([self.vaes_[k] for k in keys], X, progress)

    def _adaptive_distances(
        self, keys: list[str], X: np.ndarray, progress: Optional[ProgressCallback] = None
    ) -> AdaptiveDistances:
        """Adaptive-K distances (`regentree.scoring.adaptive`) of probes `X` under the VAEs named by `keys`.

        The KL verdicts kept are those of `adaptive_kl_band` when set (e.g. the paper's (1, 20) for a
        whole threshold table), else that of the KL threshold in force (none when the rule is off).
        """
        if self.adaptive_kl_band is not None:
            band = tuple(float(v) for v in self.adaptive_kl_band)
        else:
            threshold = self.rejection_rule().kl_threshold
            band = None if threshold is None else (max(float(threshold), 1e-6),) * 2
        return self._scoring_config().adaptive_distances([self.vaes_[k] for k in keys], X, band, progress)

    def winner_key(self, class_index: np.ndarray) -> list[str]:
        """Key of the VAE whose novelty reference applies to each winning class."""
        raise NotImplementedError

    def novelty_scorer(self) -> NoveltyScorer:
        """Empirical p-values of a winner's distortion against that VAE's held-out distortions (built once)."""
        return self.novelty_reference_.scorer(self.winner_key(np.arange(len(self.classes_))))

    # ----------------------------------------------------------------- public API
    def judge(self, decision: Decision) -> Prediction:
        """Apply the novelty score and the rejection rule in force to a `decide` result."""
        self._check_fitted()
        distortion = summarize(decision.winner_distances, self.decision)
        mismatch = self.novelty_reference_.mismatch(self._scoring_config())
        if not mismatch:
            novelty = self.novelty_scorer().score(decision.class_index, distortion)
        elif self.rejection_rule().novelty_threshold is None:
            novelty = np.full(len(distortion), np.nan)  # the references do not apply to these distortions
        else:
            raise ConfigError(
                f"the novelty rule is on, but its references were recorded with other scoring parameters "
                f"({describe_mismatch(mismatch)}); set them back or refit"
            )
        rejected, reasons = self.rejection_rule().apply(decision.kl, None if mismatch else novelty)
        return Prediction(
            labels=self.classes_[decision.class_index],
            rejected=rejected,
            reasons=reasons,
            kl=decision.kl,
            novelty=novelty,
            distortion=distortion,
            n_vae_evaluations=decision.n_vae_evaluations,
            trace=decision.trace,
        )

    # ----------------------------------------------------------------- inspection
    def summary(self) -> dict:
        """What the fitted model is, JSON-ready: classes, VAEs, scoring, the rejection rule in force, training.

        For people and tools that meet a model folder without its training script (`regentree info`).
        """
        self._check_fitted()
        config = next(iter(self.vaes_.values())).config
        trained = [self.training_info_[k] for k in self.vaes_ if k in self.training_info_]
        references = [len(self.reference_distortions_[k]) for k in self.vaes_ if k in self.reference_distortions_]
        return {
            **self._summary_head(),
            "n_vaes": len(self.vaes_),
            "vae": {"architecture": config.architecture, "hidden_dims": list(config.hidden_dims),
                    "latent_dim": config.latent_dim, "input_dim": config.input_dim, "likelihood": config.likelihood},
            "n_parameters": int(sum(p.numel() for vae in self.vaes_.values() for p in vae.parameters())),
            "scoring": {"n_regenerations": int(self.n_regenerations), "noise_variance": float(self.noise_variance),
                        "distance": self.distance, "decision": self.decision, "kl_estimator": self.kl_estimator,
                        "adaptive": bool(self.adaptive), "precision": self.scoring_precision,
                        "precision_here": resolve_scoring_precision(self.scoring_precision, resolve_device(self.device))},
            "novelty_references": {"per_vae_min": min(references, default=0), "per_vae_max": max(references, default=0),
                                   "applicable": not self.novelty_reference_.mismatch(self._scoring_config())},
            "training": {"epochs_cap": int(self.epochs), "base_epochs": self.base_epochs,
                         "base_vae_epochs_run": self.base_training_info_.get("epochs_run") if self.base_vae_ is not None else None,
                         "epochs_run_min": min((t["epochs_run"] for t in trained), default=None),
                         "epochs_run_max": max((t["epochs_run"] for t in trained), default=None),
                         "seconds_sum": round(sum(t.get("seconds", 0.0) for t in trained), 1),
                         "precision": self.training_precision},
            **self._summary_extra(),
        }

    def _summary_extra(self) -> dict:
        """Estimator-specific entries of `summary` (a flat model meets every VAE)."""
        return {"max_vae_evaluations": len(self.vaes_)}

    # ----------------------------------------------------------------- fitted state
    def _fitted_state(self) -> FittedState:
        """The fitted model as a `FittedState`, VAE modules and arrays shared: what `save` writes, what a failed
        add-class restores."""
        self._check_fitted()
        return FittedState(
            **self._fitted_state_head(self.get_params()),
            novelty_reference=dict(self.novelty_reference_.distortions),
            novelty_reference_setup=dict(self.novelty_reference_.setup),
            extra={},
            vaes={key: StoredVAE(vae, list(self.vae_classes_[key]), self.training_info_.get(key, {}))
                  for key, vae in self.vaes_.items()},
            base_vae=None if self.base_vae_ is None else StoredVAE(self.base_vae_, [], self.base_training_info_),
        )

    @classmethod
    def _from_fitted_state(cls, state: FittedState) -> "BaseRegenClassifier":
        """A fitted estimator rebuilt from `state`, its parameters checked against `_parameter_constraints`."""
        try:
            model = cls(**state.params)
        except TypeError as exc:
            raise state.error("manifest", f"parameters do not fit a {state.kind} model ({exc})") from None
        try:
            model._check_params()
        except ConfigError as exc:
            raise state.error("manifest", str(exc)) from None
        model._set_fitted_state(state)
        return model

    def _set_fitted_state(self, state: FittedState) -> None:
        """Take every fitted attribute from `state`, checking that its parts fit together and fit this model."""
        self._forget_fitted()
        self.classes_, self.n_features_in_, self.image_shape_ = state.classes, state.n_features, tuple(state.image_shape)
        for key, stored in state.vaes.items():
            if stored.vae.config.input_dim != self.n_features_in_:
                raise state.error("manifest", f"VAE {key!r} expects {stored.vae.config.input_dim} features, model "
                                              f"has {self.n_features_in_}")
        self.vaes_ = {key: stored.vae for key, stored in state.vaes.items()}
        self.vae_classes_ = {key: list(stored.classes) for key, stored in state.vaes.items()}
        self.training_info_ = {key: stored.training for key, stored in state.vaes.items()}
        base = state.base_vae
        if base is not None and base.vae.config != self._vae_config(self.n_features_in_):
            raise state.error("manifest", "'base_vae' does not match the model's VAE config")
        self.base_vae_ = None if base is None else base.vae
        self.base_training_info_ = {} if base is None else base.training
        setup = state.novelty_reference_setup
        if setup is None:  # older folders: the saved parameters
            setup = NoveltyReference.under(self._scoring_config()).setup
        if not isinstance(setup, dict):
            raise state.error("manifest", "'novelty_reference_setup' must be an object")
        self.novelty_reference_ = NoveltyReference(setup, state.novelty_reference or {})
        missing = sorted(set(self.vaes_) - set(self.novelty_reference_.distortions))
        if missing:
            raise state.error("manifest", f"no novelty reference for VAE {missing[0]!r}")
        self._adopt_calibration(state)
