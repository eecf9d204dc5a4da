"""Do calibrated thresholds and conformal sets hold on new probes? Many random calibration/evaluation splits.

    python benchmarks/rejection_stability.py --quick    # embedded 8x8 digits, tiny model, ~1 min on 2 cores
    python benchmarks/rejection_stability.py            # MNIST, 300 training images per class, 4000 test probes

The model and the softmax MLP baseline are trained once and the test probes scored once; then, for each of
`--splits` random (not contiguous) halvings of the test probes into calibration and evaluation:

- the KL threshold that rejects at most 5 % of known probes is chosen on the calibration half, plainly and
  with `confidence` 0.95 (`threshold_for_rejection_rate`), and its realized rejection rate and selective
  risk (error among the kept) are measured on the evaluation half: mean, spread, and the share of splits
  where the 5 % bound holds;
- the class-conditional conformal sets of the re-generation model (`conformalize` on the calibration half)
  and MAPIE's split-conformal LAC and APS sets over the softmax baseline are measured on the evaluation half:
  coverage (marginal and worst class) and mean set size at confidence 0.9 (MAPIE rows only when it is installed).

Writes benchmarks/results/rejection_stability[_quick].json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import print_table, shared_data, write_result
from regentree import FlatRegenClassifier
from regentree.evaluation.baseline import SoftmaxBaseline
from regentree.rejection.conformal import coverage_report, mondrian_p_values, prediction_sets
from regentree.data import load_dataset, stratified_subsample
from regentree.evaluation.evaluate import true_class_index
from regentree.rejection.thresholds import threshold_for_rejection_rate

MAX_REJECTION = 0.05
CONFIDENCE = 0.95  # the threshold's bound holds on new probes with this probability
SET_CONFIDENCE = 0.9  # confidence of the conformal sets
SETTINGS = {
    "quick": {"model": dict(hidden_dims=(32,), latent_dim=4, epochs=15, batch_size=32, patience=0, n_regenerations=30),
              "baseline_epochs": 30, "hidden_dims": (32,)},
    "full": {"model": dict(hidden_dims=(256,), latent_dim=10, epochs=20, batch_size=64, patience=5, n_regenerations=50),
             "baseline_epochs": 20, "hidden_dims": (256,)},
}


def load(quick: bool, seed: int):
    """Training and test sets: the embedded digits, or MNIST with 300 training images per class and 4000 test probes."""
    if quick:
        return load_dataset("digits", split="train", seed=seed), load_dataset("digits", split="test", seed=seed)
    train = stratified_subsample(load_dataset(shared_data("mnist"), "train"), 300, seed=seed)
    test = load_dataset(shared_data("mnist"), "test")
    return train, test.subset(np.random.default_rng(seed).permutation(len(test))[:4000])


def spread(values) -> dict:
    """Mean, standard deviation, min and max over the splits."""
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)), "min": float(arr.min()), "max": float(arr.max())}


def threshold_rows(kl: np.ndarray, correct: np.ndarray, splits: list) -> list[dict]:
    """Realized rejection and selective risk of the 5 % KL threshold, plain and held with 95 % confidence."""
    rows = []
    for confidence in (None, CONFIDENCE):
        rejection, risk = [], []
        for cal, ev in splits:
            threshold = threshold_for_rejection_rate(kl[cal], MAX_REJECTION, confidence=confidence)
            kept = kl[ev] >= threshold
            rejection.append(1.0 - kept.mean())
            risk.append(1.0 - correct[ev][kept].mean() if kept.any() else 0.0)
        rows.append({"rule": "KL <= 5 % rejected" + ("" if confidence is None else f" ({confidence:.0%})"),
                     "confidence": confidence, "realized_rejection": spread(rejection),
                     "selective_risk": spread(risk),
                     "bound_holds_share": float(np.mean(np.asarray(rejection) <= MAX_REJECTION + 1e-12))})
    return rows


def set_row(method: str, reports: list[dict]) -> dict:
    """Coverage and set size of one conformal method over the splits."""
    return {"method": method, "confidence": SET_CONFIDENCE,
            "coverage": spread([r["coverage"] for r in reports]),
            "worst_class_coverage": spread([r["worst_class_coverage"] for r in reports]),
            "mean_set_size": spread([r["mean_set_size"] for r in reports]),
            "empty_share": spread([r["empty_share"] for r in reports]),
            "coverage_holds_share": float(np.mean([r["coverage"] >= SET_CONFIDENCE for r in reports]))}


def regentree_sets(class_scores: np.ndarray, y: np.ndarray, splits: list) -> list[dict]:
    """Coverage reports of the re-generation model's class-conditional sets, calibrated on each split's first half."""
    reports = []
    for cal, ev in splits:
        calibration = [class_scores[cal][y[cal] == c, c] for c in range(class_scores.shape[1])]
        sets = prediction_sets(mondrian_p_values(calibration, class_scores[ev]), SET_CONFIDENCE)
        reports.append(coverage_report(sets, y[ev]))
    return reports


def mapie_sets(baseline: SoftmaxBaseline, X: np.ndarray, y: np.ndarray, splits: list) -> dict[str, list[dict]]:
    """Coverage reports of MAPIE's LAC and APS split-conformal sets over the prefit softmax baseline."""
    from mapie.classification import SplitConformalClassifier

    out = {}
    for score in ("lac", "aps"):
        reports = []
        for cal, ev in splits:
            mapie = SplitConformalClassifier(baseline, confidence_level=SET_CONFIDENCE, conformity_score=score,
                                             prefit=True).conformalize(X[cal], y[cal])
            sets = mapie.predict_set(X[ev])[1][:, :, 0]
            reports.append(coverage_report(sets, y[ev]))
        out[f"MAPIE {score.upper()} (softmax MLP)"] = reports
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="embedded digits and a tiny model")
    parser.add_argument("--splits", type=int, default=20, help="random calibration/evaluation splits (>= 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setting = SETTINGS["quick" if args.quick else "full"]
    started = time.perf_counter()
    train, test = load(args.quick, args.seed)
    model = FlatRegenClassifier(**setting["model"], random_state=args.seed).fit(
        train.X, train.labels, image_shape=train.image_shape)
    decision = model.decide(test.X)
    y = true_class_index(model, test)
    correct = decision.class_index == y
    baseline = SoftmaxBaseline(hidden_dims=setting["hidden_dims"], epochs=setting["baseline_epochs"],
                               random_state=args.seed).fit(train.X, true_class_index(model, train))
    rng = np.random.default_rng(args.seed)
    splits = [np.split(rng.permutation(len(y)), [len(y) // 2]) for _ in range(args.splits)]
    thresholds = threshold_rows(decision.kl, correct, splits)
    methods = {"regentree class-conditional": regentree_sets(decision.class_scores, y, splits)}
    try:
        methods.update(mapie_sets(baseline, test.X, y, splits))
        mapie = "used"
    except ImportError:
        mapie = "not installed: MAPIE rows left out"
    sets = [set_row(name, reports) for name, reports in methods.items()]
    result = {
        "quick": args.quick, "n_train": len(train), "n_test": len(y), "n_splits": args.splits,
        "accuracy": float(correct.mean()), "baseline_accuracy": float(np.mean(baseline.predict(test.X) == y)),
        "max_rejection": MAX_REJECTION, "thresholds": thresholds, "conformal_sets": sets, "mapie": mapie,
        "model": {k: list(v) if isinstance(v, tuple) else v for k, v in setting["model"].items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_result("rejection_stability" + ("_quick" if args.quick else ""), result)
    print_table([{"rule": r["rule"], "rejected mean": f"{r['realized_rejection']['mean']:.4f}",
                  "rejected std": f"{r['realized_rejection']['std']:.4f}",
                  "rejected max": f"{r['realized_rejection']['max']:.4f}",
                  "risk mean": f"{r['selective_risk']['mean']:.4f}", "bound holds": f"{r['bound_holds_share']:.0%}"}
                 for r in thresholds], ["rule", "rejected mean", "rejected std", "rejected max", "risk mean", "bound holds"])
    print()
    print_table([{"method": s["method"], "coverage": f"{s['coverage']['mean']:.4f} ± {s['coverage']['std']:.4f}",
                  "worst class": f"{s['worst_class_coverage']['mean']:.4f}",
                  "set size": f"{s['mean_set_size']['mean']:.3f}"} for s in sets],
                ["method", "coverage", "worst class", "set size"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
