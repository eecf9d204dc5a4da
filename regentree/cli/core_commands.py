"""Core commands: `train`, `classify`, `evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from regentree.cli.conformal_output import (
    SetLevel, check_set_level, print_set_report, probe_sets, set_labels, set_report,
)
from regentree.cli.demo import classify_held_out_digits, quick_model
from regentree.cli.explain import SHORTLIST, explanation, explanation_lines
from regentree.cli.progress_display import ProgressMode
from regentree.cli.training_options import TrainingOptions, training_options, training_set
from regentree.cli.common import (
    DEFAULT_THRESHOLDS, AsJson, Quiet, ScoringPrecision, Seed, app, check_png_name, check_positive, checked_backend,
    console, err_console, fmt, make_estimator, parse_thresholds, print_json, show_progress,
    user_errors,
)
from regentree.cli.rejection_commands import (
    SPLIT_HELP, print_baseline_report, print_rejection_report, probe_origin, rule_summary, train_baseline,
)
from regentree.errors import ConfigError

Device = Annotated[Optional[str], typer.Option(help="Torch device: cpu, cuda, cuda:N or auto (cuda when present).")]
PLOTTED_PROBES = 6  # probes drawn by `classify --plot`
DISTANCE_LABELS = {"cross_entropy": "cross-entropy distance to the re-generations",
                   "neg_log_weight": "-log importance weight of the re-generations"}


def _use_scoring(model, device: Optional[str], precision: Optional[str]):
    """Score with `model` on `device` in `precision` (None: the model's); with no model, only check the values."""
    from regentree.backends.devices import resolve_device, resolve_scoring_precision

    given = {"device": device, "scoring_precision": precision}
    if device is not None:
        resolve_device(device)
    if precision is not None:
        resolve_scoring_precision(precision, resolve_device("cpu"))
    if model is not None:
        model.set_params(**{k: v for k, v in given.items() if v is not None})
    return model

def _draws_summary(model) -> str:
    """One line: how many re-generations the probes got (adaptive or fixed K)."""
    if getattr(model, "adaptive", False):
        return (f"scoring: adaptive K, {model.n_regenerations_min} to {model.n_regenerations} draws per probe and VAE "
                f"(--fixed-k gives every probe all {model.n_regenerations})")
    return f"scoring: K={model.n_regenerations} draws per probe and VAE"


# --------------------------------------------------------------------------- commands
@app.command()
@training_options
def train(
    data: Annotated[str, typer.Argument(help="'digits', an IDX folder, a .npz file or an image folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    split: Annotated[str, typer.Option(help="Which split of DATA to train on.")] = "train",
    unlabelled: Annotated[Optional[str], typer.Option(
        help="Data set whose images (labels ignored) the base VAE also learns from; turns the base VAE on "
             "under --base-epochs auto (the default); not with --base-epochs 0.")] = None,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
    *,
    training: TrainingOptions,
) -> None:
    """Train a flat model (one VAE per class) and save it as a model folder."""
    from regentree.data import load_dataset
    from regentree.persistence.model_folder import check_model_destination

    with user_errors():
        check_model_destination(out)  # before any training time is spent
        estimator = make_estimator("flat", training.parameters(), {})  # bad options fail before any data is read
        dataset = training_set(data, split, training.limit_per_class, training.seed)
        extra = None if unlabelled is None else load_dataset(unlabelled, split=split, seed=training.seed).X
        with show_progress(quiet, progress_mode) as progress:
            estimator.fit(dataset.X, dataset.labels, X_unlabelled=extra, image_shape=dataset.image_shape,
                          progress=progress)
        estimator.save(out)
    console.print(f"saved {estimator.kind} model with {len(estimator.classes_)} classes to {out}")


def _classify_table(names: list[str], prediction, truth: Optional[list], sets: Optional[list] = None) -> Table:
    table = Table(title="regentree classify")
    table.add_column("probe", overflow="fold")
    if truth is not None:
        table.add_column("true")
    for column in ("label", "verdict", "KL", "novelty p", "distortion"):
        table.add_column(column, justify="right")
    if sets is not None:
        table.add_column("set", overflow="fold")
    for i, record in enumerate(prediction.to_records()):
        verdict = f"[yellow]rejected ({record['reason']})[/yellow]" if record["rejected"] else "[green]kept[/green]"
        row = [names[i]] + ([str(truth[i])] if truth is not None else [])
        row += [str(record["label"]), verdict, fmt(record["kl"]), fmt(record["novelty_p"], 3), fmt(record["distortion"], 1)]
        if sets is not None:
            row.append("{" + ", ".join(sets[i]) + "}")
        table.add_row(*row)
    return table


def _print_explanations(names: list[str], records: list[dict], kl_threshold) -> None:
    """Each probe's `explanation` under its name and verdict."""
    for name, record in zip(names, records):
        verdict = f"rejected ({record['reason']})" if record["rejected"] else "kept"
        console.print(f"[bold]{name}[/bold]: {record['label']}, {verdict}", highlight=False)
        for line in explanation_lines(record["trace"], kl_threshold):
            console.print("  " + line, highlight=False, soft_wrap=True)


@app.command()
def classify(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="[MODEL] FILES...: a model folder first (optional), then PNG/JPEG/.npy/.npz/IDX files."),
    ] = None,
    as_json: AsJson = False,
    explain: Annotated[bool, typer.Option("--explain", help=(
        f"Show why: per step the classes or tree nodes met (the best {SHORTLIST}, the others counted), their "
        "distances and the KL; the step whose KL was compared with the threshold is marked."))] = False,
    plot: Annotated[Optional[Path], typer.Option(
        help=f"Draw the first {PLOTTED_PROBES} probes into this PNG file: each one's distance distribution under "
             "every class VAE, beside the input and its best and second-best re-generations (flat models).")] = None,
    n_probes: Annotated[int, typer.Option(
        help="Held-out digits shown when no files are given (the whole digits test split is scored and "
             "summed up).")] = 12,
    device: Device = None,
    scoring_precision: ScoringPrecision = None,
    fixed_k: Annotated[bool, typer.Option(
        "--fixed-k", help="Give every probe all K draws, as in the paper. Default for flat models: adaptive K, "
                          "which stops drawing for a probe once its class and its KL verdict are settled.")] = False,
    scheduler: Annotated[Optional[str], typer.Option(help="Shard the probes over a Dask scheduler (tcp://HOST:PORT or local:N).")] = None,
    set_level: SetLevel = None,
    seed: Seed = 0,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
) -> None:
    """Classify images; with no model, train a quick calibrated one on the embedded digits and show the idea."""
    from regentree.data import load_probes
    from regentree.persistence.model_folder import MANIFEST, load_model, write_file_atomically

    paths = list(paths or [])
    with user_errors():
        check_positive("--n-probes", n_probes)
        check_png_name(plot)
        check_set_level(set_level)
        _use_scoring(None, device, scoring_precision)
        spec = checked_backend(None, scheduler)
        if paths and paths[0].is_dir() and (paths[0] / MANIFEST).exists():
            model, files = load_model(paths[0]), paths[1:]
        else:
            model, files = None, paths
        for path in files:  # a bad first argument fails here, before any quick model is trained
            if path.is_dir():
                raise ConfigError(f"{path}: a folder but not a model folder (no {MANIFEST}); give a model folder "
                                  "first, then image or array files")
            if not path.exists():
                raise ConfigError(f"{path}: no such model folder or probe file")
        if model is None:
            model = quick_model(quiet or as_json, progress_mode, seed)
        _use_scoring(model, device, scoring_precision)
        if model.kind == "flat":
            model.set_params(adaptive=not fixed_k)
        if plot is not None and model.kind != "flat":
            raise ConfigError(f"--plot draws every class's distances, which only a flat model computes; "
                              f"this is a {model.kind} model (--explain shows the VAEs a probe met)")
        if not files and model.image_shape_ != (8, 8):
            raise ConfigError("no probe files given; pass image or array files to classify")
        truth = held_out = None
        with show_progress(quiet or as_json, progress_mode) as progress:
            if files:
                X, names = load_probes(files, model.image_shape_)
                prediction = model.predict_with_rejection(X, explain=explain, progress=progress, backend=spec)
            else:
                held_out = classify_held_out_digits(model, n_probes, seed, explain=explain, progress=progress,
                                                    backend=spec)
                X, names, truth, prediction = held_out.X, held_out.names, held_out.truth, held_out.prediction
        sets = None if set_level is None else set_labels(model, probe_sets(model, X, set_level))
        if plot is not None:
            write_file_atomically(plot, _regeneration_png(model, X[:PLOTTED_PROBES], names, prediction))
        summary = f"{rule_summary(model)}\n{_draws_summary(model)}"  # all that can fail runs before any row is printed
        table = _classify_table(names, prediction, truth, sets)
        records = prediction.to_records()
        for i, (name, record) in enumerate(zip(names, records)):
            record["probe"] = name
            if sets is not None:
                record["set"] = sets[i]
            if explain:
                record["trace"] = explanation(record["trace"])
    if as_json:
        print_json(records)
        return
    console.print(table)
    console.print(summary, highlight=False)
    if truth is not None:
        correct = np.array([str(p) == str(t) for p, t in zip(prediction.labels, truth)])
        kept = ~prediction.rejected
        kept_accuracy = f"{correct[kept].mean():.0%}" if kept.any() else "-"
        console.print(
            f"accuracy on these {len(truth)} held-out digits: {correct.mean():.0%}; "
            f"on the {int(kept.sum())} kept: {kept_accuracy}; {int((~correct & prediction.rejected).sum())} of "
            f"{int((~correct).sum())} mistakes rejected"
        )
        console.print(held_out.summary, highlight=False)
    if explain:
        _print_explanations(names, records, model.rejection_rule().kl_threshold)
    if plot is not None:
        console.print(f"wrote {plot} (the first {min(len(X), PLOTTED_PROBES)} of {len(X)} probes)", highlight=False)


def _regeneration_png(model, X: np.ndarray, names: list[str], prediction) -> bytes:
    """PNG of the paper's Fig. 4 for probes `X` of a flat model: distances under every class VAE (ranked
    by the model's decision statistic), the input, and the best and second-best re-generations."""
    from regentree.evaluation.plots import figure_png, regeneration_figure
    from regentree.scoring.regeneration import mean_regenerations
    from regentree.scoring.statistics import summarize

    distances = model.class_distances(X)
    scores = summarize(distances, model.decision)
    ranked = np.argsort(scores, axis=1)
    regenerated = mean_regenerations([model.vaes_[k] for k in model.vae_keys_], X, device=model.device)
    rows = np.arange(len(X))
    titles = []
    for i, record in enumerate(prediction.to_records()[: len(X)]):
        verdict = f"rejected ({record['reason']})" if record["rejected"] else "kept"
        titles.append(f"{names[i]}: {record['label']}, {verdict}, KL {record['kl']:.2f}")
    figure = regeneration_figure(X, distances, regenerated[rows, ranked[:, 0]], regenerated[rows, ranked[:, 1]],
                                 [str(c) for c in model.classes_], model.image_shape_, titles=titles, scores=scores,
                                 distance_label=DISTANCE_LABELS.get(model.distance, model.distance))
    return figure_png(figure)


@app.command()
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model folder.")],
    data: Annotated[str, typer.Argument(help="Labelled test data: 'digits', IDX folder, .npz or image folder.")],
    split: Annotated[str, typer.Option(help="Which split of DATA to evaluate on.")] = "test",
    thresholds: Annotated[str, typer.Option(help="KL thresholds of the Acc/P_miss table.")] = DEFAULT_THRESHOLDS,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N probes.")] = None,
    unseen: Annotated[Optional[str], typer.Option(help="Data of unseen objects: report AUROC, AUPR, FPR95.")] = None,
    unseen_split: Annotated[Optional[str], typer.Option(help="Which split of --unseen to use. " + SPLIT_HELP)] = None,
    baseline: Annotated[Optional[str], typer.Option(
        help="Train a softmax MLP of the model's size on this data's train split (the model's training data) "
             "and report it beside the model.")] = None,
    baseline_epochs: Annotated[int, typer.Option(min=1, help="Epochs of the softmax baseline.")] = 20,
    device: Device = None,
    scoring_precision: ScoringPrecision = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Shard the probes over a Dask scheduler (tcp://HOST:PORT or local:N).")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        help="Also draw the risk–coverage curve, the KL distributions and (with --unseen) the ROC curves "
             "into this PNG file.")] = None,
    set_level: SetLevel = None,
    seed: Seed = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
) -> None:
    """Accuracy, the Acc / P_miss table over KL thresholds (paper, Table I), risk–coverage, unseen objects."""
    from regentree.data import held_out_split, load_dataset
    from regentree.evaluation.evaluate import evaluation_report, score_for_evaluation
    from regentree.persistence.model_folder import load_model, write_file_atomically
    from regentree.rejection.score_shift import shift_warning

    with user_errors():
        check_positive("--limit", limit)
        levels = parse_thresholds(thresholds)
        check_png_name(plot)
        check_set_level(set_level)
        spec = checked_backend(None, scheduler)
        model = _use_scoring(load_model(model_path), device, scoring_precision)
        dataset = load_dataset(data, split=split, seed=seed)
        if limit:
            dataset = dataset.subset(np.arange(min(limit, len(dataset))))
        other = None
        if unseen is not None:
            unseen_split = unseen_split or held_out_split(unseen)
            other = load_dataset(unseen, split=unseen_split, seed=seed)
            other = other.subset(np.arange(min(limit, len(other)))) if limit else other
        reference = None
        if baseline is not None:
            reference = train_baseline(load_dataset(baseline, split="train", seed=seed), model, baseline_epochs, seed)
        with show_progress(quiet or as_json, progress_mode) as progress:
            scores = score_for_evaluation(model, dataset, progress=progress, unseen=other, backend=spec)
        report = evaluation_report(model, dataset, scores, levels, unseen=other, baseline=reference)
        report["probes"] = probe_origin(len(dataset), data, split)
        if set_level is not None:
            sets = probe_sets(model, dataset.X, set_level, scores.decision.class_scores)
            report["conformal_sets"] = set_report(model, sets, scores.y_true, set_level)
        if other is not None:
            report["unseen"]["probes"] = probe_origin(len(other), unseen, unseen_split)
        if plot is not None:
            write_file_atomically(plot, _evaluation_png(model, scores, dataset, reference,
                                                        f"regentree evaluate: {model_path} on {data}"))
    warning = None if report["score_shift"] is None else shift_warning(report["score_shift"])
    if warning:
        err_console.print(warning, highlight=False, soft_wrap=True)
    if as_json:
        print_json(report)
        return
    console.print(f"{report['probes']}: accuracy without rejection {report['accuracy_no_rejection']:.2%}",
                  highlight=False)
    table = Table(title="Acc / P_miss by KL threshold (paper eq. 5-6)")
    for column in ("threshold", "Acc %", "P_miss", "rejected %"):
        table.add_column(column, justify="right")
    for row in report["threshold_table"]:
        table.add_row(fmt(row["threshold"], 1), fmt(100 * row["accuracy"]), fmt(row["p_miss"], 4), fmt(100 * row["rejection_rate"]))
    console.print(table)
    console.print(rule_summary(model), highlight=False)
    print_rejection_report(report)
    if set_level is not None:
        print_set_report(report["conformal_sets"])
    if "baseline" in report:
        print_baseline_report(report["baseline"])
    if plot is not None:
        console.print(f"wrote {plot}", highlight=False)


def _evaluation_png(model, scores, dataset, baseline, title: str) -> bytes:
    """PNG of `regentree.evaluation.plots.evaluation_figure` for one `score_for_evaluation` pass over `dataset`, with
    the softmax `baseline`'s risk–coverage curve when one was trained."""
    from regentree.evaluation.evaluate import baseline_predictions
    from regentree.evaluation.plots import evaluation_figure, figure_png

    unseen = scores.unseen
    baseline_correct = baseline_confidence = None
    if baseline is not None:
        prediction, baseline_confidence = baseline_predictions(baseline, dataset)
        baseline_correct = prediction == dataset.labels
    figure = evaluation_figure(
        scores.correct, scores.decision.kl, rejected=scores.verdict.rejected,
        kl_threshold=model.rejection_rule().kl_threshold, unseen_kl=None if unseen is None else unseen.kl,
        novelty=scores.verdict.novelty, unseen_novelty=None if unseen is None else unseen.novelty,
        baseline_correct=baseline_correct, baseline_confidence=baseline_confidence, title=title)
    return figure_png(figure)
