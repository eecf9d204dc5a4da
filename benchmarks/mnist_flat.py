"""Paper Table I, latent 15: flat regentree on MNIST, accuracy and Acc/P_miss by KL threshold.

    python benchmarks/mnist_flat.py            # full: 60k train, 10k test, K=300 (~15 min on 2 cores)
    python benchmarks/mnist_flat.py --quick    # 1000 train/class, 1000 test, 10 epochs

Writes benchmarks/results/mnist_flat[_quick].json and keeps the model in benchmarks/models/ (not committed)
for the benchmarks that reuse it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import MODELS, load_or_train, print_table, shared_data, write_result
from regentree import FlatRegenClassifier
from regentree.data import load_dataset, stratified_subsample
from regentree.evaluation.evaluate import true_class_index
from regentree.evaluation.metrics import threshold_table

PAPER = {  # Table I, dim_z = 15: threshold -> (Acc %, P_miss)
    1: (98.96, 0.009), 5: (99.50, 0.029), 10: (99.73, 0.048), 15: (99.82, 0.065), 20: (99.86, 0.078),
}
PAPER_NO_REJECTION = 98.27


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small subsets and few epochs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sigma2", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decision", choices=["mean", "median", "likelihood"], default="mean",
                        help="statistic that ranks the classes")
    parser.add_argument("--distance", choices=["cross_entropy", "neg_log_weight"], default="cross_entropy",
                        help="per-draw distance; neg_log_weight with --decision likelihood ranks by log p(x)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant", help="learning-rate schedule")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience (0: off)")
    parser.add_argument("--tag", default="", help="suffix of the saved model's and the result's name (a training recipe)")
    parser.add_argument("--reuse", action="store_true",
                        help="score the model a previous run saved in benchmarks/models/ (with this --sigma2) instead of training")
    args = parser.parse_args()

    folder = shared_data("mnist")
    train, test = load_dataset(folder, "train"), load_dataset(folder, "test")
    if args.quick:
        train = stratified_subsample(train, 1000, seed=args.seed)
        test = test.subset(np.arange(1000))
    epochs = args.epochs or (10 if args.quick else 100)
    tag = f"_{args.tag}" if args.tag else ""
    saved = MODELS / (("mnist_flat_quick" if args.quick else "mnist_flat") + tag)

    def fit() -> FlatRegenClassifier:
        model = FlatRegenClassifier(latent_dim=15, hidden_dims=(500, 500), epochs=epochs, noise_variance=args.sigma2,
                                    decision=args.decision, distance=args.distance, n_regenerations=300, random_state=args.seed,
                                    batch_size=args.batch_size, learning_rate=args.lr, learning_rate_schedule=args.schedule,
                                    patience=args.patience, rejection_target=None)
        return model.fit(train.X, train.labels, image_shape=train.image_shape)

    # --reuse scores the saved model and stops when there is none; without it a new model is trained and kept
    model, _, seconds = load_or_train(saved if args.reuse else [], None if args.reuse else fit, keep=saved)
    model.set_params(noise_variance=args.sigma2, decision=args.decision, distance=args.distance)
    train_seconds = None if seconds is None else round(seconds, 1)
    started = time.perf_counter()
    decision = model.decide(test.X)
    score_seconds = time.perf_counter() - started

    y_true = true_class_index(model, test)
    accuracy = float(np.mean(decision.class_index == y_true))
    table = threshold_table(y_true, decision.class_index, decision.kl, list(PAPER))
    rows = [{"threshold": "none", "acc_%": f"{100 * accuracy:.2f}", "p_miss": "-",
             "paper_acc_%": PAPER_NO_REJECTION, "paper_p_miss": "-"}]
    rows += [{"threshold": r["threshold"], "acc_%": f"{100 * r['accuracy']:.2f}", "p_miss": f"{r['p_miss']:.4f}",
              "paper_acc_%": PAPER[r["threshold"]][0], "paper_p_miss": PAPER[r["threshold"]][1]} for r in table]
    print_table(rows, ["threshold", "acc_%", "p_miss", "paper_acc_%", "paper_p_miss"])
    result = {
        "mode": "quick" if args.quick else "full",
        "n_train": len(train), "n_test": len(test), "epochs_max": epochs, "latent_dim": 15,
        "batch_size": model.batch_size, "learning_rate": model.learning_rate,
        "learning_rate_schedule": model.learning_rate_schedule, "patience": model.patience,
        "n_regenerations": 300, "noise_variance": args.sigma2, "decision": args.decision,
        "distance": args.distance,
        "accuracy": accuracy, "paper_accuracy": PAPER_NO_REJECTION / 100,
        "target_accuracy": 0.983, "goal_accuracy": 0.988, "target_met": accuracy >= 0.983,
        **{f"acc_at_thr_{r['threshold']}": r["accuracy"] for r in table},
        **{f"p_miss_at_thr_{r['threshold']}": r["p_miss"] for r in table},
        **{f"paper_acc_at_thr_{t}": a / 100 for t, (a, _) in PAPER.items()},
        **{f"paper_p_miss_at_thr_{t}": p for t, (_, p) in PAPER.items()},
        "train_seconds": train_seconds,
        "model_reused": args.reuse,
        "epochs_run_per_vae": [info["epochs_run"] for info in model.training_info_.values()],
        "score_seconds": round(score_seconds, 1),
        "probes_per_s": round(len(test) / score_seconds, 2),
    }
    print(f"\ntrain {train_seconds} s, scoring {result['probes_per_s']} probes/s")
    name = ("mnist_flat_quick" if args.quick else "mnist_flat") + tag
    variant = ("" if args.sigma2 == 1.0 else f"_sigma2_{args.sigma2:g}") + ("" if args.decision == "mean" else f"_{args.decision}")
    variant += "" if args.distance == "cross_entropy" else f"_{args.distance}"
    print("wrote", write_result(name + variant, result))


if __name__ == "__main__":
    main()
