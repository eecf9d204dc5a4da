"""The `--set LEVEL` option of `classify` and `evaluate`: conformal prediction sets and their coverage."""

from __future__ import annotations

from typing import Annotated, Optional

import numpy as np
import typer

from regentree.cli.common import console, fmt
from regentree.rejection.conformal import coverage_report, prediction_sets
from regentree.errors import ConfigError

SetLevel = Annotated[Optional[float], typer.Option(
    "--set", metavar="CONFIDENCE",
    help="Also give each probe's conformal prediction set at this confidence (e.g. 0.9): the classes whose "
         "class-conditional p-value exceeds 1 - CONFIDENCE; an empty set means no class fits.")]


def check_set_level(level: Optional[float]) -> None:
    """Refuse a `--set` outside (0, 1) before any work."""
    if level is not None and not 0.0 < level < 1.0:
        raise ConfigError(f"--set must be a confidence in (0, 1), e.g. 0.9; got {level}")


def set_labels(model, sets: np.ndarray) -> list[list[str]]:
    """Each probe's set as the class names it holds, in the model's class order."""
    names = [str(c) for c in model.classes_]
    return [[names[c] for c in np.flatnonzero(row)] for row in sets]


def probe_sets(model, X: np.ndarray, level: float, class_scores: Optional[np.ndarray] = None) -> np.ndarray:
    """Set membership (n_probes, n_classes) at `level`, reusing a decision's class scores when they cover every class."""
    if class_scores is None or np.isnan(class_scores).any():
        class_scores = model.class_distortions(X)
    return prediction_sets(model.p_values_from_distortions(class_scores), level)


def set_report(model, sets: np.ndarray, y_true: np.ndarray, level: float) -> dict:
    """Coverage (marginal, per class, worst class) and set size of `sets` on probes of true class indices `y_true`."""
    report = coverage_report(sets, y_true)
    names = [str(c) for c in model.classes_]
    return {
        "confidence": float(level),
        "calibration": model.conformal_source(),
        "coverage": report["coverage"],
        "worst_class": names[report["worst_class"]],
        "worst_class_coverage": report["worst_class_coverage"],
        "class_coverage": {names[c]: v for c, v in report["class_coverage"].items()},
        "mean_set_size": report["mean_set_size"],
        "empty_share": report["empty_share"],
    }


def print_set_report(report: dict) -> None:
    """One line: coverage of the conformal sets against their confidence, the worst class and the set size."""
    console.print(
        f"conformal sets at {report['confidence']:.0%} (calibrated on {report['calibration']}): coverage "
        f"{fmt(100 * report['coverage'])} %, worst class {report['worst_class']} {fmt(100 * report['worst_class_coverage'])} %, "
        f"mean set size {fmt(report['mean_set_size'])}, empty {fmt(100 * report['empty_share'])} %",
        highlight=False,
    )
