"""Shared machinery of the paper benchmarks: settings per mode, data, cached models, result keys.

Models are cached under benchmarks/models/paper/<dataset>_z<latent>_<all|nN>_<mode>/ (git-ignored) and
reused by every table that needs them (Table II re-scores Table I's models with another sigma^2, Table IV
Table III's, Tables V and VI Table I's latent-15 model). A cached model is reused only when its training
parameters equal the ones asked for; the scoring parameters are set after loading to the paper's
(mean cross-entropy rule, sigma^2 = 1, the mode's K), whatever rule the model was saved with.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from _common import MODELS, ROOT, load_or_train, shared_data
from regentree import FlatRegenClassifier
from regentree.data import Dataset, load_dataset, stratified_subsample
from regentree.evaluation.evaluate import true_class_index

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
DATASETS = {"mnist": "mnist", "fashion": "fashion_mnist"}


@dataclass(frozen=True)
class Settings:
    """How big one run is. `per_class` None = the whole training split; `n_test` None = the whole test split."""

    mode: str
    per_class: Optional[int]
    epochs: int
    limited_epochs: int
    n_test: Optional[int]
    n_regenerations: int
    n_unlabelled: int
    common_vae_epochs: int
    hidden_dims: tuple = (500, 500)
    base_epochs: int = 1  # epochs of the base VAE that limited-label models may start from
    self_training_epochs: int = 1  # epochs of the re-training of a self-trained limited-label model
    seed: int = 0
    n_jobs: int = 1  # worker processes that train the VAEs (same weights for any value)

    @property
    def suffix(self) -> str:
        return "_quick" if self.mode == "quick" else ""

    def to_dict(self) -> dict:
        return {f"setting_{k}": (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


QUICK = Settings("quick", per_class=300, epochs=8, limited_epochs=10, n_test=500, n_regenerations=50,
                 n_unlabelled=1000, common_vae_epochs=8, base_epochs=3,
                 self_training_epochs=5)
# limited-label models train for a fixed number of epochs (`LIMITED_LABELS`): 60 images per class make one
# optimiser step per epoch
FULL = Settings("full", per_class=None, epochs=100, limited_epochs=1000, n_test=None, n_regenerations=300,
                n_unlabelled=10000, common_vae_epochs=30, base_epochs=40,
                 self_training_epochs=200)

# Limited-label VAEs keep no images back and train all their epochs: early stopping on 6 held-out images per
# class stopped them far too early (N = 600: 23.6 % test error with it, 14.4 % without, 2000 probes, K = 100)
LIMITED_LABELS = {"validation_fraction": 0.0, "patience": 0}

PAPER_SCORING = {"distance": "cross_entropy", "decision": "mean", "noise_variance": 1.0}
LIKELIHOOD_SCORING = {"distance": "neg_log_weight", "decision": "likelihood", "noise_variance": 1.0}

# Models trained by other benchmarks with exactly the parameters a paper model asks for.
ALIASES = {"mnist_z15_all_full": MODELS / "mnist_flat", "fashion_z15_all_full": MODELS / "fashion_mnist_flat"}


def load_split(dataset: str, split: str, settings: Settings) -> Dataset:
    """Train split subsampled to `per_class`, or test split cut to its first `n_test` probes."""
    data = load_dataset(shared_data(DATASETS[dataset]), split)
    if split == "train" and settings.per_class is not None:
        return stratified_subsample(data, settings.per_class, seed=settings.seed)
    if split == "test" and settings.n_test is not None:
        return data.subset(np.arange(min(settings.n_test, len(data))))
    return data


def _training_params(latent: int, epochs: int, settings: Settings, extra: Optional[dict] = None) -> dict:
    return {"latent_dim": latent, "hidden_dims": tuple(settings.hidden_dims), "epochs": epochs,
            "random_state": settings.seed, **(extra or {})}


def _matches(model: FlatRegenClassifier, wanted: dict) -> bool:
    params = model.get_params()
    params["hidden_dims"] = tuple(params["hidden_dims"])
    return all(params[k] == v for k, v in wanted.items())


def model_key(dataset: str, latent: int, settings: Settings, n_labelled: Optional[int] = None, tag: str = "") -> str:
    return f"{dataset}_z{latent}_{'all' if n_labelled is None else f'n{n_labelled}'}{tag}_{settings.mode}"


def cached_model(dataset: str, train: Dataset, latent: int, settings: Settings,
                 n_labelled: Optional[int] = None, epochs: Optional[int] = None, *, extra: Optional[dict] = None,
                 tag: str = "", fit_kwargs: Optional[dict] = None) -> tuple[FlatRegenClassifier, dict]:
    """A flat model of `latent` trained on `train`: loaded from the cache when its training parameters match.

    `extra` adds estimator parameters (e.g. `LIMITED_LABELS`), `tag` names such a variant in the cache
    key, and `fit_kwargs` go to `fit` (e.g. `X_unlabelled` for a base VAE). Returns the model
    (K = `settings.n_regenerations`, `PAPER_SCORING`) and facts of where it came from.
    """
    key = model_key(dataset, latent, settings, n_labelled, tag)
    wanted = _training_params(latent, epochs or settings.epochs, settings, extra)
    path = MODELS / "paper" / key

    def fit() -> FlatRegenClassifier:
        model = FlatRegenClassifier(**wanted, n_regenerations=settings.n_regenerations, n_jobs=settings.n_jobs,
                                    rejection_target=None, **PAPER_SCORING)
        return model.fit(train.X, train.labels, image_shape=train.image_shape, **(fit_kwargs or {}))

    model, folder, seconds = load_or_train([path, ALIASES.get(key)], fit, keep=path,
                                           accept=lambda model: _matches(model, wanted), load=FlatRegenClassifier.load)
    model.set_params(n_regenerations=settings.n_regenerations, **PAPER_SCORING)
    source = {"model": str(folder.relative_to(ROOT)), "trained_now": seconds is not None}
    return model, source if seconds is None else {**source, "train_seconds": round(seconds, 1)}


def scored(model, test: Dataset):
    """One scoring pass: (Decision, true class indices, seconds)."""
    started = time.perf_counter()
    decision = model.decide(test.X)
    return decision, true_class_index(model, test), time.perf_counter() - started


def pct(value: Optional[float], digits: int = 2) -> str:
    """A fraction as a percentage string; '-' for None/NaN."""
    return "-" if value is None or value != value else f"{100 * value:.{digits}f}"


def paper_value(value) -> str:
    return "-" if value is None else str(value)
