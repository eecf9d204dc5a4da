"""Flat vs tree on the same probes: one scoring run, batches timed side by side, one report.

Both models score the same batches of probes, alternating which goes first, so machine load
affects them alike and the probes/s figures are comparable. The report holds, per model: accuracy
without rejection, accuracy and P_miss under the model's own rule (and where that rule came from) and
over a range of KL thresholds, VAE evaluations per probe, probes/s, training time and (tree) depth.
A fixed KL threshold rejects a different share of probes in each model, so flat and tree are compared
at one rejection target by default (`calibrated_at_fit_for` tells when `fit` already did it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from regentree.rejection.calibration import describe_origin
from regentree.data import Dataset
from regentree.errors import InvalidInputError
from regentree.estimators.outputs import Decision
from regentree.estimators.selective import FIT_CALIBRATION_SOURCE
from regentree.evaluation.evaluate import baseline_report, true_class_index
from regentree.evaluation.metrics import selective_report, threshold_table
from regentree.progress import ProgressCallback, report

DEFAULT_THRESHOLDS = (1.0, 5.0, 10.0, 15.0, 20.0)


def timed_side_by_side(
    models: dict[str, object], X: np.ndarray, batch_size: int = 256, progress: Optional[ProgressCallback] = None
) -> tuple[dict[str, Decision], dict[str, float]]:
    """Decisions of every model on `X` and the seconds each spent, batch by batch in alternating order.

    Parameters
    ----------
    models : dict of str -> fitted estimator
    X : ndarray of shape (n_probes, n_features)
    batch_size : int
        Probes per batch; bounds memory (the flat model holds (batch, M, K) distances).

    Returns
    -------
    decisions : dict of str -> Decision
    seconds : dict of str -> float
        Wall time of each model's `decide` calls, summed over batches.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    names = list(models)
    parts: dict[str, list[Decision]] = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    starts = range(0, len(X), batch_size)
    for i, start in enumerate(starts):
        batch = X[start : start + batch_size]
        for name in names if i % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            parts[name].append(models[name].decide(batch))
            seconds[name] += time.perf_counter() - began
        report(progress, "scoring side by side", min(start + batch_size, len(X)), len(X))
    return {name: Decision.concatenate(parts[name]) for name in names}, seconds


def calibrated_at_fit_for(model, target: float) -> bool:
    """Whether `model`'s rule is the KL rule `fit` set to reject `target` of its held-out probes (nothing else)."""
    origin = model.rejection_origin()
    return (origin["how"] == "calibrated" and origin.get("source") == FIT_CALIBRATION_SOURCE
            and origin.get("rule") == "kl" and origin.get("max_rejection") == target
            and origin.get("max_selective_error") is None and origin.get("confidence") is None)


TREE_SUMMARY_KEYS = ("depth", "routing", "flat_below", "beam_width", "similarity", "builder", "max_vae_evaluations")


def model_summary(model) -> dict:
    """Kind, size and training facts of a fitted model: the slice of its `summary()` a comparison reports."""
    summary = model.summary()
    trained = summary.get("members", [summary])  # an ensemble's training facts are its members'
    out = {
        "kind": summary["kind"],
        "n_classes": int(summary["n_classes"]),
        "n_vaes": int(summary["n_vaes"]),
        "training_seconds": float(sum(m["training"]["seconds_sum"] for m in trained)),
        "n_regenerations": int(model.n_regenerations),
    }
    if "depth" in summary:
        out.update({key: summary[key] for key in TREE_SUMMARY_KEYS if key in summary})
    return out


def compare_models(
    models: dict[str, object],
    dataset: Dataset,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    batch_size: int = 256,
    progress: Optional[ProgressCallback] = None,
    baseline=None,
) -> dict:
    """Score `dataset` with every model side by side and report accuracy, rejection, cost and speed.

    A fitted `SoftmaxBaseline` adds ``baseline`` (`regentree.evaluation.evaluate.baseline_report`, at each
    model's rejection rate).

    Returns
    -------
    dict
        ``n_probes``, ``thresholds`` and ``models``: name -> {summary (see `model_summary`),
        ``accuracy_no_rejection``, ``with_model_rule`` (`selective_report` under the model's rule),
        ``threshold_table``, ``mean_vae_evaluations``, ``max_vae_evaluations_seen``,
        ``scoring_seconds``, ``probes_per_s``}; with two models, ``speedup`` of the second over the
        first in probes/s.
    """
    classes = {tuple(str(c) for c in m.classes_) for m in models.values()}
    if len(classes) != 1:
        raise InvalidInputError("compared models must know the same classes")
    decisions, seconds = timed_side_by_side(models, dataset.X, batch_size, progress)
    out: dict = {"n_probes": int(len(dataset)), "thresholds": [float(t) for t in thresholds], "models": {}}
    for name, model in models.items():
        y_true = true_class_index(model, dataset)
        decision = decisions[name]
        verdict = model.judge(decision)
        out["models"][name] = {
            **model_summary(model),
            "accuracy_no_rejection": float(np.mean(decision.class_index == y_true)),
            "with_model_rule": {
                **model.rejection_rule().to_dict(),
                "origin": model.rejection_origin(),
                **selective_report(y_true, decision.class_index, verdict.rejected),
            },
            "threshold_table": threshold_table(y_true, decision.class_index, decision.kl, list(thresholds)),
            "mean_vae_evaluations": float(np.mean(decision.n_vae_evaluations)),
            "max_vae_evaluations_seen": int(np.max(decision.n_vae_evaluations)),
            "scoring_seconds": float(seconds[name]),
            "probes_per_s": float(len(dataset) / seconds[name]) if seconds[name] > 0 else float("inf"),
        }
    if len(models) == 2:
        first, second = (out["models"][n] for n in models)
        out["speedup"] = second["probes_per_s"] / first["probes_per_s"]
    if baseline is not None:
        rates = {name: m["with_model_rule"]["rejection_rate"] for name, m in out["models"].items()}
        out["baseline"] = baseline_report(baseline, dataset, rates)
    return out


def _pct(value: float) -> str:
    return "-" if value is None or np.isnan(value) else f"{100 * value:.2f}"


def footing_text(calibration: dict) -> str:
    """One sentence: the rejection target every model was calibrated to, and on which probes."""
    return (f"Every model's KL rule is calibrated to reject {calibration['max_rejection']:.2%} "
            f"({calibration['n_calibration']} probes: {calibration['source']}), so the rows compare equal coverage.")


def rule_text(rule: dict) -> str:
    """'KL < 0.134, calibrated at fit on 144 held-out training probes for rejection <= 5.00% (rule kl)'."""
    kl = "KL rule off" if rule["kl_threshold"] is None else f"KL < {rule['kl_threshold']:.3g}"
    novelty = "" if rule["novelty_threshold"] is None else f", novelty p < {rule['novelty_threshold']:.3g}"
    return f"{kl}{novelty}, {describe_origin(rule['origin'])}"


def report_markdown(result: dict, title: str = "regentree: flat vs tree") -> str:
    """The comparison as a markdown document."""
    names = list(result["models"])
    rows = [
        ("kind", lambda m: m["kind"]),
        ("VAEs", lambda m: str(m["n_vaes"])),
        ("tree depth", lambda m: str(m.get("depth", "-"))),
        ("accuracy, no rejection (%)", lambda m: _pct(m["accuracy_no_rejection"])),
        ("accuracy with the model's rule (%)", lambda m: _pct(m["with_model_rule"]["accuracy"])),
        ("P_miss with the model's rule", lambda m: f"{m['with_model_rule']['p_miss']:.4f}"),
        ("rejection rule", lambda m: rule_text(m["with_model_rule"])),
        ("rejected (%)", lambda m: _pct(m["with_model_rule"]["rejection_rate"])),
        ("VAE evaluations per probe (mean)", lambda m: f"{m['mean_vae_evaluations']:.2f}"),
        ("VAE evaluations per probe (max)", lambda m: str(m["max_vae_evaluations_seen"])),
        ("probes/s", lambda m: f"{m['probes_per_s']:.1f}"),
        ("training time (s)", lambda m: f"{m['training_seconds']:.1f}"),
    ]
    lines = [f"# {title}", "", f"{result['n_probes']} probes, scored side by side in one run.", ""]
    if "calibration" in result:
        lines += [footing_text(result["calibration"]), ""]
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(get(result["models"][n]) for n in names) + " |" for label, get in rows]
    if "speedup" in result:
        lines += ["", f"Speed of {names[1]} over {names[0]}: {result['speedup']:.2f}x probes/s."]
    lines += ["", "## Accuracy / P_miss by KL threshold", "", "| threshold | " + " | ".join(
        f"{n} acc % | {n} P_miss" for n in names) + " |", "|---|" + "---|---|" * len(names)]
    for i, threshold in enumerate(result["thresholds"]):
        cells = []
        for n in names:
            row = result["models"][n]["threshold_table"][i]
            cells += [_pct(row["accuracy"]), f"{row['p_miss']:.4f}"]
        lines.append(f"| {threshold:g} | " + " | ".join(cells) + " |")
    if "baseline" in result:
        lines += ["", *baseline_markdown(result["baseline"])]
    return "\n".join(lines) + "\n"


def baseline_markdown(report: dict) -> list[str]:
    """Lines of a markdown section on the softmax baseline (see `regentree.evaluation.evaluate.baseline_report`)."""
    rc = report["risk_coverage_msp"]
    lines = [
        "## Softmax baseline (max-softmax rejection)", "",
        f"An MLP with hidden layers {report['hidden_dims']} trained {report['epochs']} epochs on the same data: "
        f"accuracy without rejection {_pct(report['accuracy_no_rejection'])} %, AURC {rc['aurc']:.5f}.", "",
        "| rejecting as many as | rejected (%) | baseline acc (%) | baseline P_miss |", "|---|---|---|---|",
    ]
    for name, row in report["at_rejection_rate_of"].items():
        lines.append(f"| {name} | {_pct(row['rejection_rate'])} | {_pct(row['accuracy'])} | {row['p_miss']:.4f} |")
    return lines


def write_report(result: dict, folder, title: str = "regentree: flat vs tree") -> dict[str, Path]:
    """Write report.md, report.json and report.png (see `regentree.evaluation.plots`) into `folder`.

    Everything is rendered before the first file is written, so a failure writes nothing; each file is
    written atomically.
    """
    from regentree.persistence.model_folder import write_file_atomically
    from regentree.evaluation.plots import comparison_figure, figure_png

    contents = {
        "report.md": report_markdown(result, title).encode("utf-8"),
        "report.json": (json.dumps(result, indent=2) + "\n").encode("utf-8"),
        "report.png": figure_png(comparison_figure(result, title)),
    }
    return {name: write_file_atomically(Path(folder) / name, data) for name, data in contents.items()}
