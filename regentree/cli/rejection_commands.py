"""Rejection commands: `calibrate`, and how `classify` / `evaluate` show the rule in force and unseen metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from regentree.cli.progress_display import ProgressMode
from regentree.cli.common import AsJson, Quiet, Seed, app, check_positive, console, fmt, print_json, show_progress, user_errors
from regentree.rejection.calibration import calibration_summary, describe_origin
from regentree.errors import ConfigError


SPLIT_HELP = ("Split of DATA (default: 'test' of a source with train and test parts, such as digits or an IDX "
              "folder; a single-split .npz file or image folder is used whole).")


def probe_origin(n_probes: int, data: str, split: str) -> str:
    """'1,000 probes of DATA (whole)' or '(test split)': where a report's probes came from."""
    return f"{n_probes:,} probes of {data} ({'whole' if split == 'all' else split + ' split'})"


def rule_summary(model) -> str:
    """One line: the thresholds in force and where they come from."""
    rule = model.rejection_rule()
    parts = [
        f"doubtful if KL < {fmt(rule.kl_threshold, 3)}" if rule.kl_threshold is not None else "KL rule off",
        f"unseen if novelty p < {fmt(rule.novelty_threshold, 4)}" if rule.novelty_threshold is not None
        else "novelty rule off",
    ]
    return f"rejection rule: {'; '.join(parts)} ({describe_origin(model.rejection_origin())})"


def print_rejection_report(report: dict) -> None:
    """The parts of an `evaluation_report` about rejection: rule in force, risk–coverage, unseen objects."""
    rule = report["with_model_rule"]
    console.print(
        f"with the rule in force: Acc {fmt(100 * rule['accuracy'])} % (95 % interval "
        f"{'–'.join(fmt(100 * a) for a in rule['accuracy_ci95'])}), P_miss {fmt(rule['p_miss'], 4)}, "
        f"rejected {fmt(100 * rule['rejection_rate'])} % ({report['rejected_doubtful']} doubtful, "
        f"{report['rejected_unseen']} unseen)",
        highlight=False,
    )
    rc = report["risk_coverage_kl"]
    coverages = "  ".join(f"Acc@{float(k.rsplit('_', 1)[1]):.0%} {100 * v:.2f} %" for k, v in rc.items()
                          if k.startswith("accuracy_at_coverage_"))
    console.print(f"risk–coverage with KL as confidence: AURC {rc['aurc']:.5f}  E-AURC {rc['e_aurc']:.5f}  "
                  f"AUGRC {rc['augrc']:.5f}  {coverages}", highlight=False)
    unseen = report.get("unseen")
    if unseen is None:
        return
    table = Table(title=f"unseen objects: {unseen.get('probes', unseen['source'])} (unseen = positive)")
    for column in ("score", "AUROC", "AUPR-in", "AUPR-out", "FPR95"):
        table.add_column(column, justify="right")
    for name, label in (("kl", "KL (-KL)"), ("novelty", "novelty (1 - p)")):
        m = unseen[name]
        table.add_row(label, fmt(m["auroc"], 4), fmt(m["aupr_in"], 4), fmt(m["aupr_out"], 4), fmt(m["fpr95"], 4))
    console.print(table)
    r = unseen["rule"]
    console.print(
        f"rule in force rejects {100 * r['known_rejection_rate']:.2f} % of known probes and "
        f"{100 * r['unseen_rejection_rate']:.2f} % of unseen ones ({100 * r['unseen_rejected_doubtful']:.2f} % as doubtful, "
        f"{100 * r['unseen_rejected_unseen']:.2f} % as unseen)",
        highlight=False,
    )


def baseline_widths(model) -> tuple[int, ...]:
    """Hidden widths of the softmax baseline beside `model`: its VAEs' own for an MLP, else the paper's (500, 500)
    (a conv VAE's `hidden_dims` are channels, not layer widths; an ensemble has several VAE shapes)."""
    from regentree.vae.architectures import ARCHITECTURES

    architecture = ARCHITECTURES.get(getattr(model, "architecture", None))
    return tuple(model.hidden_dims) if architecture is not None and architecture.stackable else (500, 500)


def train_baseline(dataset, model, epochs: int, seed: int):
    """A `SoftmaxBaseline` of `model`'s size (`baseline_widths`), on its device, fitted to a labelled `Dataset`
    (class names as labels)."""
    from regentree.evaluation.baseline import SoftmaxBaseline

    return SoftmaxBaseline(hidden_dims=baseline_widths(model), epochs=epochs, random_state=seed,
                           device=model.device).fit(dataset.X, dataset.labels)


def print_baseline_report(report: dict) -> None:
    """The softmax baseline beside regentree: accuracy, AURC, accuracy at equal rejection, unseen AUROC."""
    rc = report["risk_coverage_msp"]
    console.print(
        f"softmax baseline (MLP {report['hidden_dims']}, {report['epochs']} epochs, max-softmax rejection): "
        f"accuracy without rejection {fmt(100 * report['accuracy_no_rejection'])} %, AURC {rc['aurc']:.5f}",
        highlight=False,
    )
    for name, row in report["at_rejection_rate_of"].items():
        console.print(
            f"  rejecting as many as the {name} ({fmt(100 * row['rejection_rate'])} %): "
            f"Acc {fmt(100 * row['accuracy'])} %, P_miss {fmt(row['p_miss'], 4)}",
            highlight=False,
        )
    if "unseen_msp" in report:
        m = report["unseen_msp"]
        console.print(
            f"  unseen objects by 1 - max softmax: AUROC {fmt(m['auroc'], 4)}, FPR95 {fmt(m['fpr95'], 4)}",
            highlight=False,
        )


@app.command()
def calibrate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model folder; the thresholds are written into it.")],
    data: Annotated[str, typer.Argument(help="Labelled calibration data: 'digits', IDX folder, .npz or image folder.")],
    max_rejection: Annotated[Optional[float], typer.Option(
        "--max-rejection", help="Reject at most this share of the known-class probes, e.g. 0.02.")] = None,
    max_error: Annotated[Optional[float], typer.Option(
        "--max-error", help="Selective error (error among kept probes) at most this, e.g. 0.005.")] = None,
    rule: Annotated[str, typer.Option(help="Which rules to switch on: kl, novelty or both.")] = "kl",
    confidence: Annotated[Optional[float], typer.Option(
        help="With --max-rejection: hold the bound on new probes with this probability, e.g. 0.95.")] = None,
    split: Annotated[Optional[str], typer.Option(help=SPLIT_HELP + " Keep it apart from evaluation.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Calibrate on the first N probes only.")] = None,
    seed: Seed = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
) -> None:
    """Choose the rejection thresholds for a target on a calibration split and store them in MODEL."""
    from regentree.data import held_out_split, load_dataset
    from regentree.persistence.model_folder import load_model

    with user_errors():
        check_positive("--limit", limit)
        if max_rejection is None and max_error is None:
            raise ConfigError("give a target: --max-rejection and/or --max-error")
        model = load_model(model_path)
        split = split or held_out_split(data)
        dataset = load_dataset(data, split=split, seed=seed)
        if limit:
            dataset = dataset.subset(np.arange(min(limit, len(dataset))))
        labels = dataset.labels
        with show_progress(quiet or as_json, progress_mode) as progress:
            model.calibrate(dataset.X, labels, max_rejection=max_rejection, max_selective_error=max_error,
                            rule=rule, confidence=confidence, progress=progress)
        model.save(model_path)
    if as_json:
        print_json({**calibration_summary(model), "data": str(data), "split": split})
        return
    report = model.calibration_report_
    console.print(rule_summary(model), highlight=False)
    console.print(
        f"on the calibration probes: rejected {100 * report['rejection_rate']:.2f} %, "
        f"selective error {fmt(None if report['selective_error'] is None else 100 * report['selective_error'], 3)} %, "
        f"P_miss {report['p_miss']:.4f}; saved to {model_path}",
        highlight=False,
    )
    console.print(f"calibrated on {probe_origin(len(dataset), data, split)}", highlight=False)
