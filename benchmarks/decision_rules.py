"""Decision rules side by side on the same trained models: mean (the paper's), median, ELBO, likelihood.

    python benchmarks/decision_rules.py            # full: MNIST and Fashion-MNIST paper models, 10k test probes each
    python benchmarks/decision_rules.py --quick    # the quick MNIST model, 1000 test probes

Each model's test set is scored twice with the same noise bank: once with the cross-entropy distance (the
paper's; ranks by the mean or the median of the K distances) and once with `neg_log_weight` (each draw's
cross-entropy plus log q(z|x) - log p(z); ranks by the mean, i.e. the negative ELBO, or by
"likelihood", the importance-weighted -log p(x)). KL rejection uses the distances of the same pass.
Reuses benchmarks/models/{mnist,fashion_mnist}_flat (written by mnist_flat.py and rejection.py).
Writes benchmarks/results/decision_rules[_quick].json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import MODELS, load_or_train, print_table, shared_data, write_result
from regentree.data import load_dataset
from regentree.evaluation.evaluate import true_class_index
from regentree.evaluation.metrics import threshold_table
from regentree.rejection.kl import first_second_kl
from regentree.scoring.statistics import summarize

RULES = (("cross_entropy", "mean"), ("cross_entropy", "median"), ("neg_log_weight", "mean"),
         ("neg_log_weight", "likelihood"))
THRESHOLDS = [1.0, 5.0, 10.0, 15.0, 20.0]
PAPER_ACCURACY = {"mnist": 0.9827, "fashion_mnist": 0.89}  # Table I (dim_z 15) and Table III (the Fashion-MNIST anchor)
TARGET_ACCURACY = {"mnist": 0.983, "fashion_mnist": 0.89}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the quick MNIST model and 1000 test probes")
    args = parser.parse_args()
    datasets = ["mnist"] if args.quick else ["mnist", "fashion_mnist"]
    result: dict = {"mode": "quick" if args.quick else "full", "thresholds": THRESHOLDS}
    rows = []
    for name in datasets:
        folder = MODELS / (f"{name}_flat_quick" if args.quick else f"{name}_flat")
        model = load_or_train(folder, missing=f"{folder} not found; run benchmarks/mnist_flat.py / rejection.py first").model
        test = load_dataset(shared_data(name), "test")
        if args.quick:
            test = test.subset(np.arange(1000))
        y_true = true_class_index(model, test)
        result[f"{name}_model"] = str(folder.relative_to(MODELS.parent.parent))
        result[f"{name}_n_test"] = len(test)
        for distance in ("cross_entropy", "neg_log_weight"):
            started = time.perf_counter()
            distances = model.set_params(distance=distance).class_distances(test.X)
            seconds = time.perf_counter() - started
            for rule_distance, decision in RULES:
                if rule_distance != distance:
                    continue
                order = np.argsort(summarize(distances, decision), axis=1, kind="stable")
                prediction = order[:, 0]
                kl = first_second_kl(distances, order, estimator=model.kl_estimator)
                key = f"{name}__{distance}__{decision}"
                accuracy = float(np.mean(prediction == y_true))
                result[f"{key}__accuracy"] = accuracy
                table = threshold_table(y_true, prediction, kl, THRESHOLDS)
                for r in table:
                    result[f"{key}__acc_at_thr_{r['threshold']:g}"] = r["accuracy"]
                    result[f"{key}__p_miss_at_thr_{r['threshold']:g}"] = r["p_miss"]
                result[f"{key}__probes_per_s"] = round(len(test) / seconds, 2)
                rows.append({"data": name, "distance": distance, "decision": decision, "acc_%": f"{100 * accuracy:.2f}",
                             **{f"thr{r['threshold']:g}": f"{100 * r['accuracy']:.2f}/{r['p_miss']:.3f}" for r in table}})
        result[f"{name}__paper_accuracy"] = PAPER_ACCURACY[name]
        result[f"{name}__target_accuracy"] = TARGET_ACCURACY[name]
        best = max(result[f"{name}__{d}__{s}__accuracy"] for d, s in RULES)
        result[f"{name}__best_accuracy"] = best
        result[f"{name}__target_met"] = best >= TARGET_ACCURACY[name]
    print_table(rows, ["data", "distance", "decision", "acc_%", *(f"thr{t:g}" for t in THRESHOLDS)])
    print("(thrT: Acc % / P_miss at KL threshold T)")
    print("wrote", write_result("decision_rules_quick" if args.quick else "decision_rules", result))


if __name__ == "__main__":
    main()
