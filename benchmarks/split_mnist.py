"""Class-incremental Split-MNIST: five tasks of two classes arrive in order; each new class is an add-class.

    python benchmarks/split_mnist.py            # full: all 60k train, 10k test, paper-sized VAEs
    python benchmarks/split_mnist.py --quick    # 300 train/class, 1000 test, paper-size VAEs, 20 epochs, K=100

Flat and tree models are built from task 1 (classes 0, 1) by successive `add_class` calls and compared
with the same estimator trained on all ten classes at once (joint). Reports the final accuracy on the
test set, the VAEs each add-class trained (flat: exactly 1; tree: at most depth + 1) and its time.
Writes benchmarks/results/split_mnist[_quick].json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import print_table, shared_data, write_result
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.data import load_dataset, stratified_subsample

TASKS = [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7"), ("8", "9")]
ANCHOR = 0.93  # per-class generative classifiers on class-incremental Split-MNIST (van de Ven et al., 2021)


def incremental(estimator, train, names):
    """Fit on task 1, then add the classes of tasks 2-5 one by one; per-add records."""
    first = np.isin(names, TASKS[0])
    estimator.fit(train.X[first], names[first], image_shape=train.image_shape)
    adds = []
    for task in TASKS[1:]:
        for label in task:
            update = estimator.add_class(train.X[names == label], label)
            adds.append({"label": label, "vaes_trained": len(update.trained), "seconds": update.seconds,
                         "depth_after": getattr(estimator, "depth_", None)})
    return adds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small subsets, few epochs, K=100")
    parser.add_argument("--per-class", type=int, default=None, help="training samples per class")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes that train the VAEs")
    parser.add_argument("--training-precision", default="float32", choices=["float32", "bfloat16"],
                        help="precision of the VAEs' matrix products in training (bfloat16: faster with AMX)")
    parser.add_argument("--kinds", default="flat,tree",
                        help="comma-separated model kinds to run (flat, tree); a partial run writes split_mnist[_quick]_<kind>.json")
    args = parser.parse_args()

    folder = shared_data("mnist")
    train, test = load_dataset(folder, "train"), load_dataset(folder, "test")
    per_class = args.per_class or (300 if args.quick else None)
    if per_class:
        train = stratified_subsample(train, per_class, seed=args.seed)
    if args.quick:
        test = test.subset(np.arange(1000))
    # quick keeps the paper's VAE size: replayed samples of tiny, barely trained VAEs say little about replay
    params = dict(latent_dim=15, hidden_dims=(500, 500),
                  epochs=args.epochs or (20 if args.quick else 100), n_regenerations=100 if args.quick else 300,
                  n_jobs=args.n_jobs, training_precision=args.training_precision, random_state=args.seed,
                  rejection_target=None)
    names, test_names = train.labels, test.labels

    rows, result = [], {}
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"flat", "tree"})
    if unknown or not kinds:
        parser.error(f"--kinds takes flat and/or tree, got {args.kinds!r}")
    for kind, cls in (("flat", FlatRegenClassifier), ("tree", TreeRegenClassifier)):
        if kind not in kinds:
            continue
        started = time.perf_counter()
        joint = cls(**params).fit(train.X, names, image_shape=train.image_shape)
        joint_seconds = time.perf_counter() - started
        joint_accuracy = float(np.mean(joint.predict(test.X) == test_names))
        model = cls(**params)
        started = time.perf_counter()
        adds = incremental(model, train, names)
        build_seconds = time.perf_counter() - started
        accuracy = float(np.mean(model.predict(test.X) == test_names))
        bound = [a["depth_after"] + 1 for a in adds] if kind == "tree" else [1] * len(adds)
        result.update({
            f"{kind}_joint_accuracy": joint_accuracy,
            f"{kind}_incremental_accuracy": accuracy,
            f"{kind}_gap_pt": round(100 * (joint_accuracy - accuracy), 2),
            f"{kind}_joint_train_seconds": round(joint_seconds, 1),
            f"{kind}_incremental_build_seconds": round(build_seconds, 1),
            f"{kind}_vaes_trained_per_add": [a["vaes_trained"] for a in adds],
            f"{kind}_vaes_trained_bound_per_add": bound,
            f"{kind}_cost_bound_met": all(a["vaes_trained"] <= b for a, b in zip(adds, bound)),
            f"{kind}_add_seconds_mean": round(float(np.mean([a["seconds"] for a in adds])), 2),
            f"{kind}_add_seconds_max": round(float(np.max([a["seconds"] for a in adds])), 2),
        })
        if kind == "tree":
            result["tree_depth_final"] = int(model.depth_)
        rows.append({"mode": kind, "joint_acc_%": f"{100 * joint_accuracy:.2f}",
                     "incremental_acc_%": f"{100 * accuracy:.2f}", "gap_pt": result[f"{kind}_gap_pt"],
                     "vaes_per_add": f"{min(a['vaes_trained'] for a in adds)}-{max(a['vaes_trained'] for a in adds)}",
                     "add_s_mean": result[f"{kind}_add_seconds_mean"]})
    print_table(rows, ["mode", "joint_acc_%", "incremental_acc_%", "gap_pt", "vaes_per_add", "add_s_mean"])
    result.update({
        "mode": "quick" if args.quick else "full", "n_train": len(train), "n_test": len(test),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "anchor_accuracy_van_de_ven_2021": ANCHOR, "goal_accuracy": 0.95, "goal_flat_gap_pt": 0.5,
    })
    if "flat" in kinds:
        result["flat_goal_met"] = result["flat_incremental_accuracy"] >= 0.95 and abs(result["flat_gap_pt"]) <= 0.5
    if "tree" in kinds:
        result["tree_goal_met"] = result["tree_incremental_accuracy"] >= 0.95
    name = ("split_mnist_quick" if args.quick else "split_mnist") + ("" if len(kinds) == 2 else f"_{kinds[0]}")
    print("wrote", write_result(name, result))


if __name__ == "__main__":
    main()
