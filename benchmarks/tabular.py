"""Tabular data: regentree flat and tree vs four scikit-learn classifiers on the data sets scikit-learn ships.

    python benchmarks/tabular.py                           # digits, iris, wine, breast_cancer; 10 splits
    python benchmarks/tabular.py --quick                   # seconds: iris and wine, 2 splits, tiny VAEs
    python benchmarks/tabular.py --regentree-input raw     # regentree on the features as they are

Data: scikit-learn's bundled loaders, which read files installed with scikit-learn (digits as raw 0..16 counts,
iris, wine, breast cancer); covtype is tried with `download_if_missing=False` and reported unavailable when its
files are not already on disk, so nothing downloads. Every method sees the same seeded stratified 70/30 splits
(`--splits` seeds). Methods, each a scikit-learn pipeline with its usual scaling: regentree flat and tree (the
quick digits config: one (128,) hidden layer, latent 4, K 100; no rejection rule, fit holds nothing out),
LogisticRegression and kNN (k = 5) after StandardScaler, RandomForest (200 trees) and HistGradientBoosting on the
features as they are. Regentree's input (`--regentree-input`): "minmax-clip" scales each feature to [0, 1] on the
training split and clips the test split into it (`MinMaxScaler(clip=True)`); "raw" hands the features over
unchanged, on which regentree's `likelihood="auto"` picks its Gaussian decoder (standardised features).

Metrics per method and data set, mean and standard deviation over the splits: accuracy, accuracy among the 90 %
most confident test probes and AURC (confidence: KL(first || second) for regentree, as its rejection rule uses it;
max predict_proba for the others), fit seconds and predict seconds (regentree: `decide`, the others:
`predict_proba`, whose argmax is the prediction), one torch / BLAS thread by default. Writes
benchmarks/results/tabular[_quick].json (keys ``<data set>_<method>_<metric>_<mean|std>``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

from _common import print_table, write_result
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.errors import RegentreeError
from regentree.evaluation.metrics import accuracy_at_coverage, aurc

LOADERS = {"digits": datasets.load_digits, "iris": datasets.load_iris, "wine": datasets.load_wine,
           "breast_cancer": datasets.load_breast_cancer}
FULL_DATASETS = ("digits", "iris", "wine", "breast_cancer", "covtype")
QUICK_DATASETS = ("iris", "wine")
COVTYPE_ROWS = 5000  # a seeded stratified subsample of covtype's 581,012 rows keeps the full run to minutes
TEST_SIZE = 0.3
COVERAGE = 0.9
METRICS = ("accuracy", f"accuracy_at_coverage_{round(100 * COVERAGE)}", "aurc", "fit_seconds", "predict_seconds")
REGENTREE = {"hidden_dims": (128,), "latent_dim": 4, "epochs": 150, "patience": 15, "batch_size": 16,
             "n_regenerations": 100}  # regentree/configs/quick_digits.json
REGENTREE_QUICK = {"hidden_dims": (16,), "latent_dim": 2, "epochs": 3, "patience": 0, "batch_size": 16,
                   "n_regenerations": 10, "base_epochs": 0}
REGENTREE_INPUTS = ("minmax-clip", "raw")


def load_table(name: str, seed: int):
    """(X, y) of data set `name`, or None when its files are not on this machine (covtype: no download)."""
    if name != "covtype":
        return LOADERS[name](return_X_y=True)
    try:
        X, y = datasets.fetch_covtype(download_if_missing=False, return_X_y=True)
    except OSError:
        return None
    keep, _ = train_test_split(np.arange(len(y)), train_size=COVTYPE_ROWS, stratify=y, random_state=seed)
    return X[keep], y[keep]


def methods(seed: int, args) -> dict:
    """Method name -> unfitted pipeline, all seeded by `seed`."""
    params = {**(REGENTREE_QUICK if args.quick else REGENTREE), "random_state": seed, "rejection_target": None,
              "kl_threshold": None}
    scale = [MinMaxScaler(clip=True)] if args.regentree_input == "minmax-clip" else []
    return {
        "regentree_flat": make_pipeline(*scale, FlatRegenClassifier(**params)),
        "regentree_tree": make_pipeline(*scale, TreeRegenClassifier(**params)),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5)),
        "random_forest": make_pipeline(RandomForestClassifier(n_estimators=200, random_state=seed)),
        "hist_gradient_boosting": make_pipeline(HistGradientBoostingClassifier(random_state=seed)),
    }


def predict_with_confidence(pipeline, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a confidence (higher = surer) for probes `X`: regentree's KL, else the max class probability."""
    model = pipeline[-1]
    if isinstance(model, (FlatRegenClassifier, TreeRegenClassifier)):
        decision = model.decide(pipeline[:-1].transform(X) if len(pipeline) > 1 else X)  # "raw": no scaler
        return model.classes_[decision.class_index], decision.kl
    proba = pipeline.predict_proba(X)
    return model.classes_[proba.argmax(axis=1)], proba.max(axis=1)


def run_split(X: np.ndarray, y: np.ndarray, seed: int, args) -> dict:
    """Method -> metric -> value on one seeded stratified split."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)
    out = {}
    for name, pipeline in methods(seed, args).items():
        began = time.perf_counter()
        pipeline.fit(X_train, y_train)
        fitted = time.perf_counter()
        labels, confidence = predict_with_confidence(pipeline, X_test)
        predicted = time.perf_counter()
        correct = labels == y_test
        out[name] = {"accuracy": float(np.mean(correct)),
                     METRICS[1]: accuracy_at_coverage(correct, confidence, COVERAGE),
                     "aurc": aurc(correct, confidence), "fit_seconds": fitted - began,
                     "predict_seconds": predicted - fitted}
    return out


def run_dataset(name: str, args) -> dict:
    """Flat keys ``<name>_...`` of one data set: its size, and each method's metrics over the splits."""
    table = load_table(name, args.seed)
    if table is None:
        return {f"{name}_available": False,
                f"{name}_reason": "its files are not on this machine and the benchmark never downloads"}
    X, y = np.asarray(table[0], dtype=np.float64), np.asarray(table[1])
    splits = [run_split(X, y, args.seed + s, args) for s in range(args.splits)]
    out = {f"{name}_available": True, f"{name}_n_samples": len(y), f"{name}_n_features": X.shape[1],
           f"{name}_n_classes": len(np.unique(y)), f"{name}_n_test": int(np.ceil(TEST_SIZE * len(y))),
           f"{name}_feature_min": float(X.min()), f"{name}_feature_max": float(X.max())}
    for method in splits[0]:
        for metric in METRICS:
            values = [split[method][metric] for split in splits]
            out[f"{name}_{method}_{metric}_mean"] = float(np.mean(values))
            out[f"{name}_{method}_{metric}_std"] = float(np.std(values))
    ranked = sorted(splits[0], key=lambda m: -out[f"{name}_{m}_accuracy_mean"])
    out[f"{name}_methods_by_accuracy"] = ranked
    for method in ("regentree_flat", "regentree_tree"):
        out[f"{name}_{method}_accuracy_rank"] = ranked.index(method) + 1
        out[f"{name}_{method}_minus_best_other_accuracy_pt"] = 100 * (
            out[f"{name}_{method}_accuracy_mean"]
            - max(out[f"{name}_{m}_accuracy_mean"] for m in ranked if not m.startswith("regentree")))
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="iris and wine, 2 splits, tiny VAEs (seconds)")
    parser.add_argument("--datasets", nargs="+", default=None,
                        help=f"data sets (default {' '.join(FULL_DATASETS)}; quick {' '.join(QUICK_DATASETS)})")
    parser.add_argument("--splits", type=int, default=None, help="seeded 70/30 splits (default 10; quick 2)")
    parser.add_argument("--regentree-input", choices=REGENTREE_INPUTS, default="minmax-clip",
                        help="minmax-clip: MinMaxScaler on the training split, clipped to [0, 1]; raw: as they are")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (1: stable timings)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first split (then seed + 1, ...)")
    parser.add_argument("--name", default=None, help="result name (default tabular[_quick])")
    args = parser.parse_args(argv)
    args.datasets = args.datasets or list(QUICK_DATASETS if args.quick else FULL_DATASETS)
    unknown = [d for d in args.datasets if d not in FULL_DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; choose from {' '.join(FULL_DATASETS)}")
    if args.splits is None:
        args.splits = 2 if args.quick else 10
    args.result_name = args.name or ("tabular_quick" if args.quick else "tabular")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"mode": "quick" if args.quick else "full", "datasets": args.datasets, "n_splits": args.splits,
              "test_size": TEST_SIZE, "coverage": COVERAGE, "regentree_input": args.regentree_input,
              "regentree_params": {k: list(v) if isinstance(v, tuple) else v
                                   for k, v in (REGENTREE_QUICK if args.quick else REGENTREE).items()},
              "threads": args.threads, "first_seed": args.seed}
    try:
        with threadpool_limits(limits=args.threads):  # BLAS and OpenMP (HistGradientBoosting) threads
            for name in args.datasets:
                result.update(run_dataset(name, args))
                print(f"{name}: done", flush=True)
    except RegentreeError as exc:
        sys.exit(f"error: {exc}")
    rows = [{"data set": name, "method": method,
             **{metric: f"{result[f'{name}_{method}_{metric}_mean']:.4g}" for metric in METRICS}}
            for name in args.datasets if result[f"{name}_available"]
            for method in result[f"{name}_methods_by_accuracy"]]
    print_table(rows, ["data set", "method", *METRICS])
    path = write_result(args.result_name, result)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
