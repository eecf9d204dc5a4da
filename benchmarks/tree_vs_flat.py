"""Flat vs tree on MNIST, Fashion-MNIST and EMNIST ByMerge (47 classes): accuracy, cost, speed, depth.

    python benchmarks/tree_vs_flat.py --quick            # 300 train/class, 300 test probes, (256, 256), K=100, 10 epochs
    python benchmarks/tree_vs_flat.py                    # full: all train data, 2000 test probes, (500, 500), K=300, 100 epochs
    python benchmarks/tree_vs_flat.py --quick --datasets emnist_bymerge --epochs 20
    python benchmarks/tree_vs_flat.py --datasets mnist --decision likelihood --distance neg_log_weight
    python benchmarks/tree_vs_flat.py --datasets mnist --reuse --batch 500   # re-score the saved models

EMNIST ByMerge ships here as its official test split only; `load_dataset` splits it 80/20, seeded and
stratified (seed 0). Each data set trains one flat and one tree model (balanced tree from class-mean
distances) with identical VAE settings, then scores the same probes with flat and three routings of the
same tree: pure hard routing (`tree_hard`), hard routing that compares the leaves of any node of at most
`--flat-below` classes directly (`tree_flat_below`), and soft routing (beam 2, `tree_soft`), batch by
batch in alternating order, so the probes/s figures are measured side by side in one run. The targets,
checked on the tree estimator's default routing: tree accuracy within 1 point of flat, VAE
evaluations per probe <= 2 * ceil(log2 M), and >= 3.5x the flat probes/s at M=47.
Each data set's rows are merged into benchmarks/results/tree_vs_flat[_quick].json as soon as they are
measured (with their own command and date), so data sets can be run one at a time; the trained models
are kept in benchmarks/models/tree_vs_flat[_quick]_<dataset>_{flat,tree}/ (not committed) for the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys

import numpy as np
import torch

from _common import MODELS, RESULTS, load_or_train, print_table, shared_data, write_result
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.evaluation.comparison import compare_models
from regentree.data import load_dataset, stratified_subsample

DATASETS = ("mnist", "fashion_mnist", "emnist_bymerge")
# the targets are checked on the tree estimator's default routing
DEFAULT_ROUTING = "tree_flat_below" if TreeRegenClassifier().flat_below > 1 else "tree_hard"


def reused(folder, cls, params: dict):
    """The model an earlier run saved in `folder`, if it was trained with `params` (scoring ones are set)."""
    model = load_or_train(folder, load=cls.load, missing=f"--reuse: no saved model in {folder}; run without --reuse first").model
    scoring = {"n_regenerations", "decision", "distance", "n_jobs"}
    saved = model.get_params()
    differ = sorted(k for k, v in params.items() if k not in scoring and saved[k] != (tuple(v) if isinstance(v, list) else v))
    if differ:
        sys.exit(f"error: --reuse: {folder} was trained with other {differ}")
    return model.set_params(**{k: params[k] for k in scoring})


def run_one(name: str, args) -> dict:
    folder = shared_data(name)
    train, test = load_dataset(folder, "train", seed=args.seed), load_dataset(folder, "test", seed=args.seed)
    if args.per_class:
        train = stratified_subsample(train, min(args.per_class, int(np.bincount(train.y).min())), seed=args.seed)
    test = test.subset(np.random.default_rng(args.seed).permutation(len(test))[: args.n_test])
    params = dict(latent_dim=15, hidden_dims=tuple(args.hidden), epochs=args.epochs, n_regenerations=args.k,
                  decision=args.decision, distance=args.distance, training_precision=args.training_precision,
                  n_jobs=args.n_jobs, random_state=args.seed, rejection_target=None)
    labels = train.labels
    folders = {kind: MODELS / f"{args.result_name}_{name}_{kind}" for kind in ("flat", "tree")}
    if args.reuse:
        flat, tree = (reused(folders[kind], cls, params) for kind, cls in
                      (("flat", FlatRegenClassifier), ("tree", TreeRegenClassifier)))
    else:
        flat = FlatRegenClassifier(**params).fit(train.X, labels, image_shape=train.image_shape)
        tree = TreeRegenClassifier(**params, routing="hard").fit(train.X, labels, image_shape=train.image_shape)
        for kind, model in (("flat", flat), ("tree", tree)):
            model.save(folders[kind])
    variants = {"tree_hard": {"routing": "hard", "flat_below": 1},
                "tree_flat_below": {"routing": "hard", "flat_below": args.flat_below},
                "tree_soft": {"routing": "soft", "beam_width": 2}}
    models = {"flat": flat, **{key: copy.copy(tree).set_params(**routing) for key, routing in variants.items()}}
    result = compare_models(models, test, batch_size=args.batch)
    m = len(flat.classes_)
    out = {"n_classes": m, "n_train": len(train), "n_test": len(test), "tree_depth": tree.depth_,
           "eval_budget_2ceil_log2_m": 2 * math.ceil(math.log2(m)), "flat_below": args.flat_below,
           "targets_measured_on": DEFAULT_ROUTING}
    for key, model in result["models"].items():
        out[f"{key}_accuracy"] = model["accuracy_no_rejection"]
        out[f"{key}_accuracy_at_kl5"] = model["threshold_table"][1]["accuracy"]
        out[f"{key}_p_miss_at_kl5"] = model["threshold_table"][1]["p_miss"]
        out[f"{key}_vae_evaluations_mean"] = model["mean_vae_evaluations"]
        out[f"{key}_vae_evaluations_max"] = model["max_vae_evaluations_seen"]
        out[f"{key}_probes_per_s"] = model["probes_per_s"]
        out[f"{key}_training_seconds"] = model["training_seconds"]
    for key in variants:
        out[f"{key}_speedup_vs_flat"] = out[f"{key}_probes_per_s"] / out["flat_probes_per_s"]
        out[f"{key}_accuracy_gap_pt"] = 100 * (out[f"{key}_accuracy"] - out["flat_accuracy"])
    out["target_accuracy_within_1pt_met"] = out[f"{DEFAULT_ROUTING}_accuracy_gap_pt"] >= -1.0
    out["target_evaluations_met"] = out[f"{DEFAULT_ROUTING}_vae_evaluations_max"] <= out["eval_budget_2ceil_log2_m"]
    if m >= 47:
        out["target_speedup_3_5x_met"] = out[f"{DEFAULT_ROUTING}_speedup_vs_flat"] >= 3.5
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small subsets, small VAEs, K=100, 10 epochs")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--per-class", type=int, default=None, help="training samples per class (default: all; quick 300)")
    parser.add_argument("--n-test", type=int, default=None, help="test probes (default 2000; quick 300)")
    parser.add_argument("--k", type=int, default=None, help="re-generations (default 300; quick 100)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden sizes (default 500 500; quick 256 256)")
    parser.add_argument("--batch", type=int, default=100, help="probes per side-by-side timing batch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable timings on a shared machine)")
    parser.add_argument("--decision", default="mean", help="decision rule of both models (mean, likelihood, ...)")
    parser.add_argument("--distance", default="cross_entropy", help="distance of both models (cross_entropy, neg_log_weight, ...)")
    parser.add_argument("--training-precision", default="float32", choices=["float32", "bfloat16"],
                        help="precision of the VAEs' matrix products in training (bfloat16: faster with AMX)")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes that train the VAEs")
    parser.add_argument("--flat-below", type=int, default=TreeRegenClassifier().flat_below,
                        help="flat_below of the tree_flat_below variant (hard routing comparing the leaves of small nodes)")
    parser.add_argument("--reuse", action="store_true",
                        help="score the models an earlier run with the same settings saved, instead of training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="result name (default tree_vs_flat[_quick])")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    args.epochs = args.epochs or (10 if quick else 100)
    args.per_class = args.per_class or (300 if quick else None)
    args.n_test = args.n_test or (300 if quick else 2000)
    args.k = args.k or (100 if quick else 300)
    args.hidden = args.hidden or ([256, 256] if quick else [500, 500])

    args.result_name = args.name or ("tree_vs_flat_quick" if quick else "tree_vs_flat")
    settings = {"mode": "quick" if quick else "full", "epochs_max": args.epochs, "per_class": args.per_class,
                "n_test": args.n_test, "n_regenerations": args.k, "hidden_dims": args.hidden, "latent_dim": 15,
                "threads": args.threads, "similarity": "mean", "builder": "balanced",
                "decision": args.decision, "distance": args.distance,
                "training_precision": args.training_precision, "n_jobs": args.n_jobs, "flat_below": args.flat_below,
                "timing_batch": args.batch}
    for name in args.datasets:
        row = {"dataset": name, **run_one(name, args)}
        print_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}],
                    ["dataset", "n_classes", "tree_depth", "flat_accuracy", "tree_hard_accuracy",
                     "tree_flat_below_accuracy", "tree_soft_accuracy", "tree_hard_vae_evaluations_max",
                     "tree_flat_below_vae_evaluations_max", "eval_budget_2ceil_log2_m", "tree_hard_speedup_vs_flat",
                     "tree_flat_below_speedup_vs_flat", "tree_soft_speedup_vs_flat"])
        print("wrote", merge_dataset_rows(args.result_name, name, row, settings), flush=True)


def merge_dataset_rows(result_name: str, dataset: str, row: dict, settings: dict):
    """Replace one data set's keys in the result file, keeping the other data sets' rows as they were."""
    path = RESULTS / f"{result_name}.json"
    kept = {}
    if path.exists():
        previous = json.loads(path.read_text())
        other = [d for d in DATASETS if d != dataset and f"{d}_n_classes" in previous]
        kept = {k: v for k, v in previous.items() if any(k.startswith(f"{d}_") for d in other)}
    written = write_result(result_name, {})
    record = json.loads(written.read_text())
    own = {f"{dataset}_{k}": v for k, v in {**settings, **row}.items() if k != "dataset"}
    own[f"{dataset}_command"], own[f"{dataset}_date"] = record["command"], record["date"]
    written.write_text(json.dumps({**record, **kept, **own}, indent=2) + "\n")
    return written

if __name__ == "__main__":
    main()
