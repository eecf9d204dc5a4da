"""Many classes, few images each: flat vs tree vs a softmax MLP and kNN, accuracy, selective accuracy and cost.

    python benchmarks/glyphs.py                                  # once: the 1,000-class glyph set
    python benchmarks/large_label_sets.py                        # rows emnist47_20, emnist47_50, emnist47_200, glyphs
    python benchmarks/large_label_sets.py --rows emnist47_20 emnist47_50 --epochs 20
    python benchmarks/large_label_sets.py --quick                # seconds: digits and a 12-class glyph set

Rows: EMNIST ByMerge (47 classes; ../shared/data/emnist_bymerge, split 80/20 by `load_dataset`, seed 0)
with 20, 50 or 200 training images per class (seeded stratified subsample) and one fixed set of
`--n-test` test probes for all three; the glyph set of `benchmarks/glyphs.py` (its train.npz, and
`--n-test` probes of test.npz, rendered in a font the training images never use). Quick mode uses the
embedded digits at 10 per class and a 12-class glyph set generated in memory, with tiny VAEs.

Each row trains a flat and a tree model with the same VAE settings (the estimators' defaults for what
is not set here, e.g. `base_epochs` and the routing: "auto", gated on these small classes), scores the
same tree also with the routings of TREE_VARIANTS (hard, ``tree_hard_*``; soft, beam 2, ``tree_soft2_*``;
the KL-gated beam at other `beam_share`s, ``tree_gated<percent>_*``) and, on the same images, a softmax MLP
(`regentree.evaluation.baseline.SoftmaxBaseline`, (500, 500)) and a 1-nearest-neighbour classifier (pixels, Euclidean). It
reports accuracy, accuracy among the 80/90/95 % most confident probes (confidence: the KL for the VAE
models, max softmax for the MLP), AURC, VAE evaluations per probe, probes/s (flat and tree scored side
by side, batch by batch), training wall time and peak resident memory of training and scoring.
Results are merged row by row into benchmarks/results/large_label_sets[_quick].json (keys
``<row>_<metric>``, each row with its own command and date), with a plot of accuracy and cost against M.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from _common import RESULTS, PeakRSS, print_table, shared_data, write_result
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.evaluation.baseline import SoftmaxBaseline
from regentree.evaluation.comparison import timed_side_by_side
from regentree.data import Dataset, load_dataset, stratified_subsample
from regentree.evaluation.metrics import accuracy_at_coverage, aurc
from regentree.evaluation.plots import _pyplot, figure_png

ROOT = Path(__file__).resolve().parents[1]
FULL_ROWS = ("emnist47_20", "emnist47_50", "emnist47_200", "glyphs")
QUICK_ROWS = ("digits_10", "glyphs_quick")
COVERAGES = (0.8, 0.9, 0.95)
TREE_VARIANTS = {
    "tree_hard": {"routing": "hard"},
    "tree_soft2": {"routing": "soft", "beam_width": 2},
    **{f"tree_gated{round(100 * share)}": {"routing": "gated", "beam_width": 2, "beam_share": share}
       for share in (0.35, 0.65)},
}
"""Other routings of the fitted tree, scored beside it: column prefix -> `set_params`."""


def emnist_row(per_class: int, args) -> tuple[Dataset, Dataset]:
    """EMNIST-47 with `per_class` training images per class and the fixed test probes."""
    folder = shared_data("emnist_bymerge")
    train, test = load_dataset(folder, "train", seed=args.seed), load_dataset(folder, "test", seed=args.seed)
    return stratified_subsample(train, per_class, seed=args.seed), fixed_probes(test, args)


def glyph_row(args) -> tuple[Dataset, Dataset]:
    """The glyph set written by benchmarks/glyphs.py into `--glyphs`."""
    paths = [args.glyphs / f"{split}.npz" for split in ("train", "test")]
    if not all(p.is_file() for p in paths):
        sys.exit(f"error: --glyphs {args.glyphs}: no train.npz/test.npz; run python benchmarks/glyphs.py first")
    return load_dataset(paths[0], "all"), fixed_probes(load_dataset(paths[1], "all"), args)


def quick_glyph_row(args) -> tuple[Dataset, Dataset]:
    """A 12-class glyph set generated in memory (10 train, 5 test images per class)."""
    import glyphs

    splits = glyphs.generate(12, 10, 5, seed=args.seed)
    names = tuple(str(c) for c in splits["train"]["class_names"])
    train, test = (Dataset(splits[s]["x"].reshape(len(splits[s]["y"]), -1).astype(np.float32) / 255.0,
                           splits[s]["y"], names, (28, 28), f"glyphs (12 classes, {s})") for s in ("train", "test"))
    return train, test


def fixed_probes(test: Dataset, args) -> Dataset:
    """The first `--n-test` probes of a seeded permutation of `test` (the same for every row of a set)."""
    return test.subset(np.random.default_rng(args.seed).permutation(len(test))[: args.n_test])


def load_row(name: str, args) -> tuple[Dataset, Dataset]:
    """Training and test images of row `name`."""
    if name.startswith("emnist47_"):
        return emnist_row(int(name.split("_")[1]), args)
    if name == "glyphs":
        return glyph_row(args)
    if name == "glyphs_quick":
        return quick_glyph_row(args)
    train, test = load_dataset("digits", "train", seed=args.seed), load_dataset("digits", "test", seed=args.seed)
    return stratified_subsample(train, int(name.split("_")[1]), seed=args.seed), fixed_probes(test, args)


def selective(prefix: str, correct: np.ndarray, confidence: np.ndarray) -> dict:
    """Accuracy, accuracy at each coverage of COVERAGES, and AURC, keyed `<prefix>_...`."""
    out = {f"{prefix}_accuracy": float(np.mean(correct)), f"{prefix}_aurc": aurc(correct, confidence)}
    for coverage in COVERAGES:
        out[f"{prefix}_accuracy_at_coverage_{round(100 * coverage)}"] = accuracy_at_coverage(correct, confidence, coverage)
    return out


def timed_fit(make, train: Dataset) -> tuple[object, float, float]:
    """A model fitted on `train`, its training wall seconds and peak resident MiB while training."""
    labels = train.labels
    with PeakRSS() as memory:
        began = time.perf_counter()
        model = make().fit(train.X, labels, image_shape=train.image_shape)
        seconds = time.perf_counter() - began
    return model, seconds, memory.peak_mb


def regen_rows(train: Dataset, test: Dataset, args) -> dict:
    """Flat and tree: training cost, selective accuracy and scoring cost on the same probes."""
    params = dict(latent_dim=args.latent, hidden_dims=tuple(args.hidden), epochs=args.epochs, n_regenerations=args.k,
                  n_jobs=args.n_jobs, training_precision=args.training_precision, random_state=args.seed)
    if args.base_epochs is not None:
        params["base_epochs"] = args.base_epochs
    out: dict = {}
    models = {}
    for kind, cls in (("flat", FlatRegenClassifier), ("tree", TreeRegenClassifier)):
        models[kind], out[f"{kind}_training_seconds"], out[f"{kind}_training_peak_rss_mb"] = \
            timed_fit(lambda: cls(**params), train)
        out[f"{kind}_n_vaes"] = len(models[kind].vaes_)
        out[f"{kind}_base_epochs"] = int(models[kind].base_training_info_.get("epochs_run", 0) or 0) \
            if models[kind].base_vae_ is not None else 0
    for kind, routing in TREE_VARIANTS.items():
        models[kind] = copy.copy(models["tree"]).set_params(**routing)
    for kind in ("tree", *TREE_VARIANTS):
        out[f"{kind}_kl_gate"] = models[kind].routing_rule().settings().get("kl_gate")
    with PeakRSS() as memory:
        decisions, seconds = timed_side_by_side(models, test.X, batch_size=args.batch)
    out["scoring_peak_rss_mb"] = memory.peak_mb
    names = test.labels
    for kind, decision in decisions.items():
        correct = np.asarray(models[kind].classes_)[decision.class_index] == names
        out.update(selective(kind, correct, decision.kl))
        out[f"{kind}_vae_evaluations_mean"] = float(decision.n_vae_evaluations.mean())
        out[f"{kind}_vae_evaluations_max"] = int(decision.n_vae_evaluations.max())
        out[f"{kind}_probes_per_s"] = len(test) / seconds[kind]
    out["tree_depth"] = int(models["tree"].depth_)
    out["tree_routing"] = models["tree"].routing_in_force()
    out["tree_flat_below"] = int(models["tree"].flat_below)
    out["tree_beam_share"] = float(models["tree"].beam_share)
    out["tree_similarity"] = models["tree"].similarity
    for kind in ("tree", *TREE_VARIANTS):
        out[f"{kind}_speedup_vs_flat"] = out[f"{kind}_probes_per_s"] / out["flat_probes_per_s"]
        out[f"{kind}_accuracy_gap_pt"] = 100 * (out[f"{kind}_accuracy"] - out["flat_accuracy"])
    return out


def baseline_rows(train: Dataset, test: Dataset, args) -> dict:
    """The softmax MLP and 1-NN on the same training images and probes."""
    names = test.labels
    labels = train.labels
    began = time.perf_counter()
    mlp = SoftmaxBaseline(epochs=args.mlp_epochs, random_state=args.seed).fit(train.X, labels)
    out = {"mlp_training_seconds": time.perf_counter() - began, "mlp_epochs": args.mlp_epochs}
    out.update(selective("mlp", mlp.predict(test.X) == names, mlp.max_softmax(test.X)))
    knn = KNeighborsClassifier(n_neighbors=1).fit(train.X, labels)
    out["knn1_accuracy"] = float(np.mean(knn.predict(test.X) == names))
    return out


def run_row(name: str, args) -> dict:
    train, test = load_row(name, args)
    m = len(train.class_names)
    row = {"n_classes": m, "n_train": len(train), "n_test": len(test),
           "train_per_class_median": float(np.median(np.bincount(train.y))), "ceil_log2_m": math.ceil(math.log2(m)),
           **regen_rows(train, test, args), **baseline_rows(train, test, args)}
    row["flat_minus_mlp_pt"] = 100 * (row["flat_accuracy"] - row["mlp_accuracy"])
    return row


def merge_row(result_name: str, name: str, row: dict, settings: dict) -> Path:
    """Replace row `name`'s keys in the result file, keeping the other rows' keys as they were."""
    path = RESULTS / f"{result_name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    rows = [r for r in previous.get("rows", []) if r != name] + [name]
    kept = {k: v for k, v in previous.items() if any(k.startswith(f"{r}_") for r in rows if r != name)}
    written = write_result(result_name, {})
    record = json.loads(written.read_text())
    own = {f"{name}_{k}": v for k, v in {**settings, **row}.items()}
    own[f"{name}_command"], own[f"{name}_date"] = record["command"], record["date"]
    written.write_text(json.dumps({**record, "rows": rows, **kept, **own}, indent=2) + "\n")
    return written


def save_plot(result_name: str) -> Path:
    """Accuracy (flat, tree, MLP, 1-NN) and cost (VAE evaluations, probes/s) of every row against M."""
    record = json.loads((RESULTS / f"{result_name}.json").read_text())
    rows = sorted(record["rows"], key=lambda r: (record[f"{r}_n_classes"], record[f"{r}_n_train"]))
    plt = _pyplot()
    figure, (ax_acc, ax_eval, ax_speed) = plt.subplots(1, 3, figsize=(15, 4))
    labels = [f"{r}\nM={record[f'{r}_n_classes']}" for r in rows]
    for key, style in (("flat_accuracy", "o-"), ("tree_accuracy", "s-"), ("mlp_accuracy", "^--"),
                       ("knn1_accuracy", "x:")):
        ax_acc.plot(labels, [record[f"{r}_{key}"] for r in rows], style, label=key.split("_")[0])
    ax_acc.set(ylabel="test accuracy", title="accuracy (no rejection)", ylim=(0, 1))
    m = [record[f"{r}_n_classes"] for r in rows]
    for kind, style in (("flat", "o"), ("tree", "s")):
        ax_eval.plot(m, [record[f"{r}_{kind}_vae_evaluations_mean"] for r in rows], style, label=kind)
        ax_speed.plot(m, [record[f"{r}_{kind}_probes_per_s"] for r in rows], style, label=kind)
    ax_eval.set(xscale="log", yscale="log", xlabel="classes M", title="VAE evaluations per probe")
    ax_speed.set(xscale="log", yscale="log", xlabel="classes M", title="probes/s")
    for ax in (ax_acc, ax_eval, ax_speed):
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_acc.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    path = RESULTS / f"{result_name}.png"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(figure_png(figure))
    partial.replace(path)
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits and 12 glyph classes, tiny VAEs (seconds)")
    parser.add_argument("--rows", nargs="+", default=None, help=f"rows to run (default {' '.join(FULL_ROWS)})")
    parser.add_argument("--glyphs", type=Path, default=ROOT / "benchmarks" / "data" / "glyphs",
                        help="folder with the glyph set's train.npz and test.npz")
    parser.add_argument("--epochs", type=int, default=None, help="VAE epochs cap (default 30; quick 2)")
    parser.add_argument("--base-epochs", type=int, default=None, help="base VAE epochs (default: the estimators')")
    parser.add_argument("--k", type=int, default=None, help="re-generations (default 50; quick 8)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden sizes (default 256 256; quick 16)")
    parser.add_argument("--latent", type=int, default=None, help="latent size (default 15; quick 4)")
    parser.add_argument("--n-test", type=int, default=None, help="test probes per row (default 2000; quick 60)")
    parser.add_argument("--mlp-epochs", type=int, default=None, help="softmax MLP epochs (default 50; quick 2)")
    parser.add_argument("--batch", type=int, default=100, help="probes per side-by-side timing batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on a shared machine)")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes that train the VAEs")
    parser.add_argument("--training-precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="result name (default large_label_sets[_quick])")
    args = parser.parse_args(argv)
    quick = args.quick
    for option, full, small in (("epochs", 30, 2), ("k", 50, 8), ("hidden", [256, 256], [16]), ("latent", 15, 4),
                                ("n_test", 2000, 60), ("mlp_epochs", 50, 2)):
        if getattr(args, option) is None:
            setattr(args, option, small if quick else full)
    allowed = QUICK_ROWS if quick else FULL_ROWS
    args.rows = args.rows or list(allowed)
    unknown = [r for r in args.rows if r not in allowed]
    if unknown:
        parser.error(f"--rows: unknown {unknown}; choose from {' '.join(allowed)}")
    args.result_name = args.name or ("large_label_sets_quick" if quick else "large_label_sets")
    return args


def main(argv=None) -> Path:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = {"mode": "quick" if args.quick else "full", "epochs_max": args.epochs, "n_regenerations": args.k,
                "hidden_dims": args.hidden, "latent_dim": args.latent, "threads": args.threads, "n_jobs": args.n_jobs,
                "training_precision": args.training_precision, "base_epochs_option": args.base_epochs,
                "plot": f"benchmarks/results/{args.result_name}.png"}
    for name in args.rows:
        row = run_row(name, args)
        print_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}],
                    ["n_classes", "n_train", "flat_accuracy", "tree_accuracy", "tree_accuracy_gap_pt",
                     *(f"{kind}_accuracy" for kind in TREE_VARIANTS), "mlp_accuracy",
                     "knn1_accuracy", "tree_vae_evaluations_mean", "tree_speedup_vs_flat", "tree_training_seconds"])
        path = merge_row(args.result_name, name, row, settings)
        print(f"{name}: wrote {path} and {save_plot(args.result_name)}", flush=True)
    return RESULTS / f"{args.result_name}.json"


if __name__ == "__main__":
    main()
