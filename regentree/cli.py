"""The `regentree` command line: parse, call the library, print. The only module that imports typer/rich."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from regentree.errors import ConfigError, RegentreeError

app = typer.Typer(
    help="Classification by re-generation: one VAE per class (or per class-tree node), with rejection.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_THRESHOLDS = "1,5,10,15,20"
QUICK_PARAMS = {"hidden_dims": (128, 128), "latent_dim": 8, "epochs": 60, "patience": 8, "batch_size": 32, "n_regenerations": 100}

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Seed = Annotated[int, typer.Option(help="Seed of training and of the re-generation noise.")]


# --------------------------------------------------------------------------- helpers
@contextmanager
def progress_bars(quiet: bool) -> Iterator:
    """A `ProgressCallback` drawing one rich bar per stage (None when quiet)."""
    if quiet:
        yield None
        return
    bars: dict[str, int] = {}
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:

        def callback(event) -> None:
            if event.stage not in bars:
                bars[event.stage] = progress.add_task(event.stage, total=event.total)
            progress.update(bars[event.stage], completed=event.done, total=event.total)

        yield callback


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and exit code 2 (nothing else is printed)."""
    try:
        yield
    except RegentreeError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        err_console.print(f"[red]error:[/red] {exc.strerror}: {exc.filename}", soft_wrap=True)
        raise typer.Exit(2) from None


def _read_config(path: Optional[Path]) -> dict:
    """Estimator parameters from a JSON config file (see configs/)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a JSON object of estimator parameters")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if not k.startswith("_")}


def _make_estimator(kind: str, config: dict, overrides: dict):
    """Estimator of `kind` from config-file params with command-line overrides (None = not given)."""
    from regentree.estimators import ESTIMATORS

    params = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    estimator = ESTIMATORS[kind]()
    unknown = set(params) - set(estimator.get_params())
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; valid ones are {sorted(estimator.get_params())}")
    return estimator.set_params(**params)


def _parse_thresholds(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError("--thresholds is empty")
    return values


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- commands
@app.command()
def train(
    data: Annotated[str, typer.Argument(help="'digits', an IDX folder, a .npz file or an image folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    config: Annotated[Optional[Path], typer.Option(help="JSON file of estimator parameters (see configs/).")] = None,
    split: Annotated[str, typer.Option(help="Which split of DATA to train on.")] = "train",
    latent_dim: Annotated[Optional[int], typer.Option(help="Latent dimension (paper: 15).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs per VAE.")] = None,
    n_regenerations: Annotated[Optional[int], typer.Option("--k", help="Re-generations per probe and VAE.")] = None,
    noise_variance: Annotated[Optional[float], typer.Option("--sigma2", help="Noise variance at scoring time.")] = None,
    kl_threshold: Annotated[Optional[float], typer.Option(help="Reject as doubtful below this KL.")] = None,
    limit_per_class: Annotated[Optional[int], typer.Option(help="Use at most this many samples per class.")] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Train a flat model (one VAE per class) and save it as a model folder."""
    from regentree.data import load_dataset, stratified_subsample

    with user_errors():
        params = _read_config(config)
        estimator = _make_estimator(
            "flat",
            params,
            {"latent_dim": latent_dim, "epochs": epochs, "n_regenerations": n_regenerations,
             "noise_variance": noise_variance, "kl_threshold": kl_threshold, "random_state": seed},
        )
        dataset = load_dataset(data, split=split, seed=seed)
        if limit_per_class:
            dataset = stratified_subsample(dataset, limit_per_class, seed=seed)
        with progress_bars(quiet) as progress:
            estimator.fit(dataset.X, np.asarray(dataset.class_names)[dataset.y], image_shape=dataset.image_shape, progress=progress)
        estimator.save(out)
    console.print(f"saved {estimator.kind} model with {len(estimator.classes_)} classes to {out}")


def _quick_model(quiet: bool, seed: int):
    """A small flat model on the embedded 8x8 digits, for a first look without a model folder."""
    from regentree.data import load_digits_dataset
    from regentree.estimators import FlatRegenClassifier

    train_set = load_digits_dataset("train", seed=seed)
    err_console.print(f"no model given: training a quick one on the embedded 8x8 digits ({len(train_set)} images)")
    model = FlatRegenClassifier(**QUICK_PARAMS, random_state=seed)
    with progress_bars(quiet) as progress:
        model.fit(train_set.X, np.asarray(train_set.class_names)[train_set.y], image_shape=(8, 8), progress=progress)
    return model


def _classify_table(names: list[str], prediction, truth: Optional[list]) -> Table:
    table = Table(title="regentree classify")
    table.add_column("probe")
    if truth is not None:
        table.add_column("true")
    for column in ("label", "verdict", "KL", "novelty p", "distortion"):
        table.add_column(column, justify="right")
    for i, record in enumerate(prediction.to_records()):
        verdict = f"[yellow]rejected ({record['reason']})[/yellow]" if record["rejected"] else "[green]kept[/green]"
        row = [names[i]] + ([str(truth[i])] if truth is not None else [])
        row += [str(record["label"]), verdict, _fmt(record["kl"]), _fmt(record["novelty_p"], 3), _fmt(record["distortion"], 1)]
        table.add_row(*row)
    return table


def _print_trace(names: list[str], prediction, classes) -> None:
    for name, steps in zip(names, prediction.trace):
        console.print(f"[bold]{name}[/bold]")
        for step in steps:
            console.print("  " + ", ".join(f"{k}={v}" for k, v in step.items()), highlight=False)


@app.command()
def classify(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(help="[MODEL] FILES...: a model folder first (optional), then PNG/JPEG/.npy/.npz/IDX files."),
    ] = None,
    as_json: AsJson = False,
    explain: Annotated[bool, typer.Option("--explain", help="Show why: the VAEs met, distances and KL.")] = False,
    n_probes: Annotated[int, typer.Option(help="Held-out digits to classify when no files are given.")] = 12,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Classify images; with no model, train a quick one on the embedded digits and show the idea."""
    from regentree.data import load_digits_dataset, load_probes
    from regentree.persistence import MANIFEST, load_model

    paths = list(paths or [])
    with user_errors():
        if paths and paths[0].is_dir() and (paths[0] / MANIFEST).exists():
            model, files = load_model(paths[0]), paths[1:]
        else:
            model, files = None, paths
        if model is None:
            model = _quick_model(quiet or as_json, seed)
        truth = None
        if files:
            X, names = load_probes(files, model.image_shape_)
        else:
            if model.image_shape_ != (8, 8):
                raise ConfigError("no probe files given; pass image or array files to classify")
            test = load_digits_dataset("test", seed=seed)
            pick = np.random.default_rng(seed).choice(len(test), size=min(n_probes, len(test)), replace=False)
            X, names = test.X[pick], [f"digits-test[{i}]" for i in pick]
            truth = [test.class_names[i] for i in test.y[pick]]
        with progress_bars(quiet or as_json) as progress:
            prediction = model.predict_with_rejection(X, explain=explain, progress=progress)
    if as_json:
        records = prediction.to_records()
        for name, record in zip(names, records):
            record["probe"] = name
        _print_json(records)
        return
    console.print(_classify_table(names, prediction, truth))
    rule = model.rejection_rule()
    console.print(f"rejection: KL threshold {rule.kl_threshold}, novelty threshold {rule.novelty_threshold}", highlight=False)
    if truth is not None:
        accuracy = np.mean([str(p) == str(t) for p, t in zip(prediction.labels, truth)])
        console.print(f"accuracy on these {len(truth)} held-out digits: {accuracy:.0%}")
    if explain:
        _print_trace(names, prediction, model.classes_)


@app.command()
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model folder.")],
    data: Annotated[str, typer.Argument(help="Labelled test data: 'digits', IDX folder, .npz or image folder.")],
    split: Annotated[str, typer.Option(help="Which split of DATA to evaluate on.")] = "test",
    thresholds: Annotated[str, typer.Option(help="KL thresholds of the Acc/P_miss table.")] = DEFAULT_THRESHOLDS,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate only the first N probes.")] = None,
    seed: Seed = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Accuracy without rejection and the Acc / P_miss table over KL thresholds (paper, Table I)."""
    from regentree.data import load_dataset
    from regentree.evaluation import evaluate_model
    from regentree.persistence import load_model

    with user_errors():
        levels = _parse_thresholds(thresholds)
        model = load_model(model_path)
        dataset = load_dataset(data, split=split, seed=seed)
        if limit:
            dataset = dataset.subset(np.arange(min(limit, len(dataset))))
        with progress_bars(quiet or as_json) as progress:
            report = evaluate_model(model, dataset, levels, progress=progress)
    if as_json:
        _print_json(report)
        return
    console.print(f"{report['n_probes']} probes, accuracy without rejection: {report['accuracy_no_rejection']:.2%}")
    table = Table(title="Acc / P_miss by KL threshold (paper eq. 5-6)")
    for column in ("threshold", "Acc %", "P_miss", "rejected %"):
        table.add_column(column, justify="right")
    for row in report["threshold_table"]:
        table.add_row(_fmt(row["threshold"], 1), _fmt(100 * row["accuracy"]), _fmt(row["p_miss"], 4), _fmt(100 * row["rejection_rate"]))
    console.print(table)


def main() -> None:
    """Entry point for `python -m regentree`."""
    app()
