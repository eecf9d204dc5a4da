"""Scale out on Dask: training wall time with 1 and 2 worker processes, and the tasks of a 1,000-class tree.

    python benchmarks/dask_scaling.py            # MNIST, 300 train/class, paper VAE (500, 500; 15), 10 epochs
    python benchmarks/dask_scaling.py --quick    # MNIST, 100 train/class, 3 epochs

Trains the same flat model (one VAE per class, 10 independent tasks) on a loopback `LocalCluster` of 1
and then 2 worker processes (1 thread each), and in this process for reference (the default local path:
the same per-task training, with torch's default thread count); reports wall times, the speed-up, and whether the weights
of all Dask runs are bit-identical. Cluster start-up (workers importing torch) is timed separately: it
is paid once per session. Then counts the VAE tasks of a balanced tree over 1,000 classes (one per
non-root node). Writes benchmarks/results/dask_scaling[_quick].json.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from _common import print_table, shared_data, write_result
from regentree import FlatRegenClassifier
from regentree.backends.dask_cluster import DaskBackend
from regentree.data import load_dataset, stratified_subsample
from regentree.tree import build_tree


def _weights(model) -> dict[str, torch.Tensor]:
    return {f"{key}.{name}": t for key, vae in model.vaes_.items() for name, t in vae.state_dict().items()}


def _max_abs_difference(a, b) -> float:
    wa, wb = _weights(a), _weights(b)
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def _warm_up(backend: DaskBackend) -> None:
    """Make every worker import regentree and torch before the timed fit."""
    backend.client.run(__import__, "regentree.training.loop")


def tree_task_count(n_classes: int, seed: int) -> dict:
    """VAE tasks of a balanced tree over `n_classes` classes with random class distances."""
    rng = np.random.default_rng(seed)
    d = rng.random((n_classes, n_classes))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    tree = build_tree(d, method="balanced")
    nodes = [n for n in tree.graph.nodes if n != tree.root]
    samples = sum(len(tree.classes(n)) for n in nodes) / n_classes  # training data seen, in flat-model units
    return {"tree_n_classes": n_classes, "tree_vae_tasks": len(nodes), "tree_vae_tasks_expected": 2 * n_classes - 2,
            "tree_depth": tree.depth, "tree_training_samples_vs_flat": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples and epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    per_class, epochs = (100, 3) if args.quick else (300, 10)
    train = stratified_subsample(load_dataset(shared_data("mnist"), "train"), per_class, seed=args.seed)
    y = train.labels
    params = dict(latent_dim=15, hidden_dims=(500, 500), epochs=epochs, patience=0, batch_size=128, random_state=args.seed,
                  rejection_target=None)
    load_before = os.getloadavg()[0]

    rows, models, result = [], {}, {}
    started = time.perf_counter()
    models["in_process"] = FlatRegenClassifier(**params).fit(train.X, y, image_shape=train.image_shape)
    result["in_process_fit_seconds"] = round(time.perf_counter() - started, 2)
    rows.append({"run": "in-process (default local backend)", "workers": 1, "fit_s": result["in_process_fit_seconds"]})
    for n in (1, 2):
        started = time.perf_counter()
        with DaskBackend(f"local:{n}") as backend:
            _warm_up(backend)
            result[f"dask_{n}_cluster_start_seconds"] = round(time.perf_counter() - started, 2)
            started = time.perf_counter()
            models[n] = FlatRegenClassifier(**params, backend=backend).fit(train.X, y, image_shape=train.image_shape)
            result[f"dask_{n}_fit_seconds"] = round(time.perf_counter() - started, 2)
        rows.append({"run": f"dask local:{n}", "workers": n, "fit_s": result[f"dask_{n}_fit_seconds"],
                     "cluster_start_s": result[f"dask_{n}_cluster_start_seconds"]})
    speedup = result["dask_1_fit_seconds"] / result["dask_2_fit_seconds"]
    print_table(rows, ["run", "workers", "fit_s", "cluster_start_s"])
    difference = _max_abs_difference(models[1], models[2])
    print(f"\nspeed-up 1 -> 2 workers: {speedup:.2f}x (target: up to ~2x on 2 cores); "
          f"dask 1 vs 2 workers weights max |diff| = {difference:g}")
    tree = tree_task_count(1000, args.seed)
    print(f"balanced tree over 1000 classes: {tree['tree_vae_tasks']} VAE tasks, depth {tree['tree_depth']}, "
          f"{tree['tree_training_samples_vs_flat']:.1f}x the training samples of a flat model")
    result.update({
        "mode": "quick" if args.quick else "full",
        "dataset": "mnist", "n_train": len(train), "n_classes": 10, "vae_tasks": 10,
        "latent_dim": 15, "hidden_dims": [500, 500], "epochs": epochs,
        "dask_speedup_2_vs_1_workers": round(speedup, 2), "target_speedup_max": 2.0,
        "dask_weights_identical_1_vs_2_workers": difference == 0.0,
        "dask_weights_max_abs_diff_1_vs_2_workers": difference,
        "in_process_vs_dask_weights_max_abs_diff": _max_abs_difference(models["in_process"], models[1]),
        "in_process_vs_dask_note": "in-process training runs the same per-task code with 2 torch threads; Dask workers "
                                   "use 1 thread, so wide layers can round differently in the last digits",
        "load_average_before": round(load_before, 2), "load_average_after": round(os.getloadavg()[0], 2),
        **tree,
    })
    print("wrote", write_result("dask_scaling_quick" if args.quick else "dask_scaling", result))


if __name__ == "__main__":
    main()
