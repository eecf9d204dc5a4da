"""The demo of `regentree classify` with no model or no files: a quick calibrated model and the held-out digits."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from regentree.cli.common import err_console, read_config, show_progress

if TYPE_CHECKING:
    from regentree.estimators.outputs import Prediction

QUICK_CONFIG = "quick_digits"  # the shipped config of the quick model, so `--config quick_digits` trains the same
QUICK_PARAMS = read_config(QUICK_CONFIG)
QUICK_MAX_REJECTION = 0.05  # the calibration target: reject at most this share of known digits


def quick_model(quiet: bool, progress_mode: str, seed: int):
    """A small flat model on the embedded 8x8 digits, its rejection rule calibrated by `fit` on a held-out part
    of the train split (never the test split, on which the demo reports), for a first look without a model folder."""
    from regentree.data import load_digits_dataset
    from regentree.estimators import FlatRegenClassifier

    train_set = load_digits_dataset("train", seed=seed)
    err_console.print(f"no model given: training a quick one on the embedded 8x8 digits ({len(train_set)} images, "
                      "a tenth of them held out to calibrate its rejection rule)")
    model = FlatRegenClassifier(**QUICK_PARAMS, rejection_target=QUICK_MAX_REJECTION, random_state=seed)
    with show_progress(quiet, progress_mode) as progress:
        model.fit(train_set.X, train_set.labels, image_shape=(8, 8), progress=progress)
    return model


@dataclass
class HeldOutDigits:
    """The probes shown (a random few of the held-out digits) and one line on the whole held-out split."""

    X: np.ndarray
    names: list[str]
    truth: list[str]
    prediction: "Prediction"  # of the shown probes
    summary: str


def _rows(prediction: "Prediction", index: np.ndarray) -> "Prediction":
    """The `Prediction` of the probes at `index` only."""
    picked = {f.name: getattr(prediction, f.name)[index] for f in fields(prediction) if f.name != "trace"}
    trace = None if prediction.trace is None else [prediction.trace[i] for i in index]
    return replace(prediction, **picked, trace=trace)


def held_out_summary(prediction: "Prediction", truth: np.ndarray, where: str) -> str:
    """One line: how many probes of `where`, accuracy without rejection, share rejected, accuracy on the kept."""
    correct = np.asarray([str(p) == str(t) for p, t in zip(prediction.labels, truth)])
    kept = ~np.asarray(prediction.rejected)
    kept_accuracy = f"{correct[kept].mean():.1%}" if kept.any() else "-"
    return (f"on all {len(correct)} held-out digits ({where}): accuracy {correct.mean():.1%} without rejection; "
            f"{1 - kept.mean():.1%} rejected; accuracy on the {int(kept.sum())} kept {kept_accuracy}")


def classify_held_out_digits(model, n_probes: int, seed: int, *, explain: bool, progress, backend) -> HeldOutDigits:
    """Classify the whole digits test split once; show `n_probes` random ones of it and sum up all of it."""
    from regentree.data import load_digits_dataset

    test = load_digits_dataset("test", seed=seed)
    pick = np.random.default_rng(seed).choice(len(test), size=min(n_probes, len(test)), replace=False)
    everything = model.predict_with_rejection(test.X, explain=explain, progress=progress, backend=backend)
    return HeldOutDigits(X=test.X[pick], names=[f"test[{i}]" for i in pick], truth=list(test.labels[pick]),
                         prediction=_rows(everything, pick),
                         summary=held_out_summary(everything, test.labels, "the digits test split"))
