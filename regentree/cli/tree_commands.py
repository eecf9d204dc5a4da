"""Tree commands: `build-tree` (train a tree model, print its tree) and `compare` (flat vs tree)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from regentree.cli.common import (
    DEFAULT_THRESHOLDS, AsJson, Backend, Quiet, Scheduler, Seed, app, check_positive, checked_backend, console, fmt,
    make_estimator, parse_thresholds, print_json, progress_bars, read_config, user_errors,
)
from regentree.cli.rejection_commands import print_baseline_report, train_baseline
from regentree.errors import ConfigError

Data = Annotated[str, typer.Argument(help="'digits', an IDX folder, a .npz file or an image folder.")]
Config = Annotated[Optional[Path], typer.Option(help="JSON file of estimator parameters (see configs/).")]
LatentDim = Annotated[Optional[int], typer.Option(help="Latent dimension (paper: 15).")]
Epochs = Annotated[Optional[int], typer.Option(help="Maximum epochs per VAE.")]
K = Annotated[Optional[int], typer.Option("--k", help="Re-generations per probe and VAE.")]
LimitPerClass = Annotated[Optional[int], typer.Option(help="Train on at most this many samples per class.")]
Similarity = Annotated[Optional[str], typer.Option(help="Class similarity: 'mean' or 'cross_distortion'.")]
Builder = Annotated[Optional[str], typer.Option(help="Tree builder: 'balanced', 'average', 'complete', 'single', 'ward'.")]
Routing = Annotated[Optional[str], typer.Option(help="Routing: 'hard' (greedy) or 'soft' (beam search).")]
BeamWidth = Annotated[Optional[int], typer.Option(help="Nodes kept per level by soft routing.")]
FlatBelow = Annotated[Optional[int], typer.Option(
    help="Hard routing: at a node of at most this many classes, compare its leaves directly (1 = pure tree).")]


def _train(kind: str, params: dict, overrides: dict, dataset, progress):
    estimator = make_estimator(kind, params, overrides)
    labels = np.asarray(dataset.class_names)[dataset.y]
    estimator.fit(dataset.X, labels, image_shape=dataset.image_shape, progress=progress)
    return estimator


def _training_set(data: str, split: str, limit_per_class: Optional[int], seed: int):
    from regentree.data import load_dataset, stratified_subsample

    dataset = load_dataset(data, split=split, seed=seed)
    return stratified_subsample(dataset, limit_per_class, seed=seed) if limit_per_class else dataset


@app.command("build-tree")
def build_tree_command(
    data: Data,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    config: Config = None,
    split: Annotated[str, typer.Option(help="Which split of DATA to train on.")] = "train",
    latent_dim: LatentDim = None,
    epochs: Epochs = None,
    n_regenerations: K = None,
    kl_threshold: Annotated[Optional[float], typer.Option(help="Reject as doubtful below this KL.")] = None,
    limit_per_class: LimitPerClass = None,
    similarity: Similarity = None,
    builder: Builder = None,
    routing: Routing = None,
    beam_width: BeamWidth = None,
    flat_below: FlatBelow = None,
    backend: Backend = None,
    scheduler: Scheduler = None,
    seed: Seed = 0,
    quiet: Quiet = False,
) -> None:
    """Train a tree model (one VAE per class-tree node), save it and print its tree."""
    with user_errors():
        check_positive("--limit-per-class", limit_per_class)
        overrides = {"latent_dim": latent_dim, "epochs": epochs, "n_regenerations": n_regenerations,
                     "kl_threshold": kl_threshold, "similarity": similarity, "builder": builder,
                     "routing": routing, "beam_width": beam_width, "flat_below": flat_below, "random_state": seed,
                     "backend": checked_backend(backend, scheduler)}
        params = read_config(config)
        make_estimator("tree", params, overrides)  # parameter errors before loading data
        dataset = _training_set(data, split, limit_per_class, seed)
        with progress_bars(quiet) as progress:
            model = _train("tree", params, overrides, dataset, progress)
        model.save(out)
    console.print(model.tree_.render_text([str(c) for c in model.classes_]), highlight=False)
    console.print(
        f"saved tree model with {len(model.classes_)} classes, {len(model.vaes_)} VAEs, depth {model.depth_} "
        f"(at most {model.max_vae_evaluations()} VAE evaluations per probe, {model.routing} routing) to {out}",
        highlight=False,
    )


def _load_kind(path: Path, kind: str):
    from regentree.persistence import load_model

    model = load_model(path)
    if model.kind != kind:
        raise ConfigError(f"--{kind} {path}: holds a {model.kind} model, not a {kind} model")
    return model


@app.command()
def compare(
    data: Data,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.md, report.json, report.png.")] = None,
    flat: Annotated[Optional[Path], typer.Option("--flat", help="Flat model folder (trained here when absent).")] = None,
    tree: Annotated[Optional[Path], typer.Option("--tree", help="Tree model folder (trained here when absent).")] = None,
    config: Config = None,
    latent_dim: LatentDim = None,
    epochs: Epochs = None,
    n_regenerations: K = None,
    limit_per_class: LimitPerClass = None,
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N test probes.")] = None,
    similarity: Similarity = None,
    builder: Builder = None,
    routing: Routing = None,
    beam_width: BeamWidth = None,
    flat_below: FlatBelow = None,
    thresholds: Annotated[str, typer.Option(help="KL thresholds of the Acc/P_miss table.")] = DEFAULT_THRESHOLDS,
    batch_size: Annotated[int, typer.Option(help="Probes per side-by-side timing batch.")] = 256,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Also train a softmax MLP of the same size on the same data and report it.")] = False,
    seed: Seed = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Flat vs tree on the same data: accuracy, rejection, VAE evaluations, probes/s, training time, depth."""
    from regentree.comparison import compare_models, write_report
    from regentree.data import load_dataset

    with user_errors():
        check_positive("--limit", limit)
        check_positive("--limit-per-class", limit_per_class)
        levels = parse_thresholds(thresholds)
        params = read_config(config)
        shared = {"latent_dim": latent_dim, "epochs": epochs, "n_regenerations": n_regenerations, "random_state": seed}
        tree_only = {"similarity": similarity, "builder": builder, "routing": routing, "beam_width": beam_width,
                     "flat_below": flat_below}
        tree_keys = set(make_estimator("tree", {}, {}).get_params()) - set(make_estimator("flat", {}, {}).get_params())
        flat_params = {k: v for k, v in params.items() if k not in tree_keys}
        make_estimator("flat", flat_params, shared)
        make_estimator("tree", params, {**shared, **tree_only})
        models = {"flat": _load_kind(flat, "flat") if flat else None, "tree": _load_kind(tree, "tree") if tree else None}
        with progress_bars(quiet or as_json) as progress:
            train_set = None
            if None in models.values() or baseline:
                train_set = _training_set(data, "train", limit_per_class, seed)
                if models["flat"] is None:
                    models["flat"] = _train("flat", flat_params, shared, train_set, progress)
                if models["tree"] is None:
                    models["tree"] = _train("tree", params, {**shared, **tree_only}, train_set, progress)
            test_set = load_dataset(data, split="test", seed=seed)
            if limit:
                test_set = test_set.subset(np.arange(min(limit, len(test_set))))
            reference = None
            if baseline:
                reference = train_baseline(train_set, models["flat"], 20, seed)
            result = compare_models(models, test_set, levels, batch_size=batch_size, progress=progress,
                                    baseline=reference)
        result["data"] = str(data)
        paths = write_report(result, out, title=f"regentree: flat vs tree on {data}") if out else {}
    if as_json:
        print_json(result)
        return
    console.print(_comparison_table(result))
    console.print(f"tree speed-up over flat: {result['speedup']:.2f}x probes/s (same probes, side by side)", highlight=False)
    if "baseline" in result:
        print_baseline_report(result["baseline"])
    for path in paths.values():
        console.print(f"wrote {path}", highlight=False)


def _comparison_table(result: dict) -> Table:
    table = Table(title=f"flat vs tree, {result['n_probes']} probes")
    table.add_column("")
    names = list(result["models"])
    for name in names:
        table.add_column(name, justify="right")
    rows = [
        ("tree depth", lambda m: str(m.get("depth", "-"))),
        ("accuracy, no rejection %", lambda m: fmt(100 * m["accuracy_no_rejection"])),
        ("accuracy with rule %", lambda m: fmt(100 * m["with_model_rule"]["accuracy"])),
        ("P_miss with rule", lambda m: fmt(m["with_model_rule"]["p_miss"], 4)),
        ("VAE evaluations / probe", lambda m: fmt(m["mean_vae_evaluations"])),
        ("probes/s", lambda m: fmt(m["probes_per_s"], 1)),
        ("training s", lambda m: fmt(m["training_seconds"], 1)),
    ]
    for label, get in rows:
        table.add_row(label, *(get(result["models"][n]) for n in names))
    return table
