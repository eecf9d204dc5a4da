"""Tree commands: `build-tree` (train a tree model, summarise its tree) and `compare` (flat vs tree)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from regentree.cli.common import (
    DEFAULT_THRESHOLDS, AsJson, Quiet, app, check_positive, console, err_console, fmt, make_estimator, parse_thresholds, print_json,
    show_progress, user_errors,
)
from regentree.cli.progress_display import ProgressMode
from regentree.cli.training_options import TrainingOptions, training_options, training_set
from regentree.cli.rejection_commands import print_baseline_report, train_baseline
from regentree.errors import ConfigError

Data = Annotated[str, typer.Argument(help="'digits', an IDX folder, a .npz file or an image folder.")]
Similarity = Annotated[Optional[str], typer.Option(help="Class similarity: 'mean' or 'cross_distortion'.")]
Builder = Annotated[Optional[str], typer.Option(help="Tree builder: 'balanced', 'average', 'complete', 'single', 'ward'.")]
Routing = Annotated[Optional[str], typer.Option(
    help="Routing: 'hard' (greedy), 'soft' (beam search), 'gated' (a beam only at doubtful steps) or 'auto' "
         "(gated when the median class has < 500 images, else hard).")]
BeamWidth = Annotated[Optional[int], typer.Option(help="Nodes kept per level by soft and gated routing.")]
BeamShare = Annotated[Optional[float], typer.Option(
    help="Gated routing: share of routing steps (held-out, by their KL) that may keep a runner-up.")]
FlatBelow = Annotated[Optional[int], typer.Option(
    help="Hard routing: at a node of at most this many classes, compare its leaves directly (1 = pure tree).")]


def _fit(kind: str, params: dict, dataset, progress):
    estimator = make_estimator(kind, params, {})
    estimator.fit(dataset.X, dataset.labels, image_shape=dataset.image_shape, progress=progress)
    return estimator


def tree_summary(model) -> str:
    """One line about a tree model's tree: depth, nodes, leaves, the balance of its splits, cost per probe."""
    tree = model.tree_
    splits = [sorted(len(tree.classes(c)) for c in tree.children(n)) for n in tree.internal_nodes()]
    balance = min((small / large for small, large in splits), default=1.0)
    return (f"tree of {len(model.classes_)} classes: depth {model.depth_}, {tree.n_nodes} nodes "
            f"({len(tree.internal_nodes())} where probes are routed), "
            f"{len(tree.leaves)} leaves, most lopsided split {balance:.2f} (smaller / larger side), "
            f"at most {model.max_vae_evaluations()} VAE evaluations per probe ({model.routing_in_force()} routing)")


@app.command("build-tree")
@training_options
def build_tree_command(
    data: Data,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    split: Annotated[str, typer.Option(help="Which split of DATA to train on.")] = "train",
    similarity: Similarity = None,
    builder: Builder = None,
    routing: Routing = None,
    beam_width: BeamWidth = None,
    beam_share: BeamShare = None,
    flat_below: FlatBelow = None,
    show_tree: Annotated[bool, typer.Option("--show-tree", help="Also draw the whole class tree.")] = False,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
    *,
    training: TrainingOptions,
) -> None:
    """Train a tree model (one VAE per class-tree node), save it and summarise its tree."""
    from regentree.persistence.model_folder import check_model_destination

    with user_errors():
        check_model_destination(out)  # before any training time is spent
        tree_options = {"similarity": similarity, "builder": builder, "routing": routing, "beam_width": beam_width,
                        "beam_share": beam_share, "flat_below": flat_below}
        params = {**training.parameters(), **{k: v for k, v in tree_options.items() if v is not None}}
        make_estimator("tree", params, {})  # parameter errors before loading data
        dataset = training_set(data, split, training.limit_per_class, training.seed)
        with show_progress(quiet, progress_mode) as progress:
            model = _fit("tree", params, dataset, progress)
        model.save(out)
    if show_tree:
        console.print(model.tree_.render_text([str(c) for c in model.classes_]), highlight=False)
    console.print(tree_summary(model), highlight=False)
    console.print(f"saved tree model with {len(model.classes_)} classes and {len(model.vaes_)} VAEs to {out}",
                  highlight=False)


def _existing_model(path: Optional[Path], kind: str):
    """The `kind` model saved at `--flat`/`--tree` PATH; None when PATH is not given, missing or empty (train it)."""
    from regentree.persistence.model_folder import MANIFEST, load_model

    if path is None or not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    if path.is_dir() and not (path / MANIFEST).exists():
        raise ConfigError(f"--{kind} {path}: a folder that is not a model folder (no {MANIFEST}); give a model "
                          "folder, a new path or an empty folder to train into")
    model = load_model(path)
    if model.kind != kind:
        raise ConfigError(f"--{kind} {path}: holds a {model.kind} model, not a {kind} model")
    return model


@app.command()
@training_options
def compare(
    data: Data,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.md, report.json, report.png.")] = None,
    flat: Annotated[Optional[Path], typer.Option(
        "--flat", help="Flat model folder: used when it holds a model, else trained here and saved to it.")] = None,
    tree: Annotated[Optional[Path], typer.Option(
        "--tree", help="Tree model folder: used when it holds a model, else trained here and saved to it.")] = None,
    calibrate: Annotated[Optional[float], typer.Option(
        "--calibrate", help="Compare both models at this rejection target (default: --rejection-target, 0.05): "
                            "models that fit calibrated for it are used as they are, else both are calibrated to "
                            "it on a seeded 20 % of the test split and the rest is scored.")] = None,
    own_rules: Annotated[bool, typer.Option(
        "--own-rules", help="Score each model under the rule it holds, calibrated or not (no common target).")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N test probes.")] = None,
    similarity: Similarity = None,
    builder: Builder = None,
    routing: Routing = None,
    beam_width: BeamWidth = None,
    beam_share: BeamShare = None,
    flat_below: FlatBelow = None,
    thresholds: Annotated[str, typer.Option(help="KL thresholds of the Acc/P_miss table.")] = DEFAULT_THRESHOLDS,
    batch_size: Annotated[int, typer.Option(help="Probes per side-by-side timing batch.")] = 256,
    baseline: Annotated[bool, typer.Option(
        "--baseline", help="Also train a softmax MLP of the same size on the same data and report it.")] = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
    *,
    training: TrainingOptions,
) -> None:
    """Flat vs tree on the same data: accuracy, rejection, VAE evaluations, probes/s, training time, depth."""
    from regentree.evaluation.comparison import calibrated_at_fit_for, compare_models, footing_text, write_report
    from regentree.data import load_dataset, train_test_split_dataset

    with user_errors():
        check_positive("--limit", limit)
        levels = parse_thresholds(thresholds)
        if calibrate is not None and not 0 < calibrate < 1:
            raise ConfigError(f"--calibrate is the share of probes to reject, in (0, 1); got {calibrate}")
        if calibrate is not None and own_rules:
            raise ConfigError("--calibrate and --own-rules exclude each other: one common target, or each model's rule")
        params = training.parameters()
        target = None if own_rules else _comparison_target(calibrate, params)
        tree_options = {"similarity": similarity, "builder": builder, "routing": routing, "beam_width": beam_width,
                        "beam_share": beam_share, "flat_below": flat_below}
        tree_params = {**params, **{k: v for k, v in tree_options.items() if v is not None}}
        flat_params = {k: v for k, v in params.items() if k not in tree_options}
        make_estimator("flat", flat_params, {})
        make_estimator("tree", tree_params, {})
        models = {"flat": _existing_model(flat, "flat"), "tree": _existing_model(tree, "tree")}
        trained_here = [kind for kind, model in models.items() if model is None]
        with show_progress(quiet or as_json, progress_mode) as progress:
            train_set = None
            if trained_here or baseline:
                train_set = training_set(data, "train", training.limit_per_class, training.seed)
            for kind in trained_here:
                models[kind] = _fit(kind, flat_params if kind == "flat" else tree_params, train_set, progress)
            test_set = load_dataset(data, split="test", seed=training.seed)
            calibration = None
            if target is not None and all(calibrated_at_fit_for(m, target) for m in models.values()):
                calibration = {"max_rejection": target, "where": "fit",
                               "n_calibration": max(m.calibration_report_["n_calibration"] for m in models.values()),
                               "source": "the seeded stratified split each fit held out from its training images"}
            elif target is not None:
                test_set, held_out = train_test_split_dataset(test_set, 0.2, training.seed)
                for model in models.values():
                    model.calibrate(held_out.X, held_out.labels, max_rejection=target, progress=progress)
                calibration = {"max_rejection": target, "where": "test split", "n_calibration": len(held_out),
                               "source": f"a seeded 20 % of the test split of {data}, not scored"}
            if limit:
                test_set = test_set.subset(np.arange(min(limit, len(test_set))))
            reference = train_baseline(train_set, models["flat"], 20, training.seed) if baseline else None
            result = compare_models(models, test_set, levels, batch_size=batch_size, progress=progress,
                                    baseline=reference)
        for kind in trained_here:
            folder = flat if kind == "flat" else tree
            if folder is not None:
                models[kind].save(folder)
                err_console.print(f"saved the {kind} model trained here to {folder}", highlight=False)
        result["data"] = str(data)
        if calibration is not None:
            result["calibration"] = calibration
        paths = write_report(result, out, title=f"regentree: flat vs tree on {data}") if out else {}
    if as_json:
        print_json(result)
        return
    if calibration is not None:
        console.print(f"{footing_text(calibration)} Scored on {result['n_probes']} other probes.", highlight=False)
    console.print(_comparison_table(result))
    console.print(f"tree speed-up over flat: {result['speedup']:.2f}x probes/s (same probes, side by side)", highlight=False)
    if "baseline" in result:
        print_baseline_report(result["baseline"])
    for path in paths.values():
        console.print(f"wrote {path}", highlight=False)


def _comparison_target(calibrate: Optional[float], params: dict) -> Optional[float]:
    """The rejection target both models are compared at: --calibrate, else the training one; None for a fixed rule.

    An explicit --kl-threshold (or a config's kl_threshold, or rejection_target null as in paper_mnist) asks
    for the fixed rule, which is then what both models are compared under.
    """
    from regentree.rejection.calibration import DEFAULT_REJECTION_TARGET

    if calibrate is not None:
        return calibrate
    if params.get("kl_threshold", "auto") != "auto":
        return None
    return params.get("rejection_target", DEFAULT_REJECTION_TARGET)


def _comparison_table(result: dict) -> Table:
    from regentree.evaluation.comparison import rule_text

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
        ("rejected %", lambda m: fmt(100 * m["with_model_rule"]["rejection_rate"])),
        ("rule", lambda m: rule_text(m["with_model_rule"])),
        ("VAE evaluations / probe", lambda m: fmt(m["mean_vae_evaluations"])),
        ("probes/s", lambda m: fmt(m["probes_per_s"], 1)),
        ("training s", lambda m: fmt(m["training_seconds"], 1)),
    ]
    for label, get in rows:
        table.add_row(label, *(get(result["models"][n]) for n in names))
    return table
