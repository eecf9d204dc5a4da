"""bfloat16 against float32 scoring, side by side in one run, on MNIST-10 and EMNIST-47 flat models.

    python benchmarks/scoring_precision.py           # about 10 minutes on 2 cores
    python benchmarks/scoring_precision.py --quick   # a smoke run (tiny models, few probes)

For each model: probes/s of both precisions at K = 300 (the best of interleaved repeats, so that load
from other processes hits both alike), the decoder's matrix-product rate as a share of the float32 and
bfloat16 matmul peaks (the best of several measurements in the same run), the agreement of decisions and of rejections, Acc and
P_miss at KL thresholds 1-20, and novelty AUROC against Fashion-MNIST. Then adaptive K on top of
bfloat16 against the paper's fixed-K float32 scoring (the product of both levers), with its verdict
agreement. Models are loaded from benchmarks/models/<name> when saved there, else trained here at the
size the result states. Writes benchmarks/results/scoring_precision[_quick].json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MODELS, load_or_train, print_table, shared_data, write_result  # noqa: E402

from regentree import FlatRegenClassifier  # noqa: E402
from regentree.data import capped_subsample, load_dataset  # noqa: E402
from regentree.backends.devices import has_fast_bfloat16  # noqa: E402
from regentree.evaluation.evaluate import true_class_index  # noqa: E402
from regentree.evaluation.metrics import ood_metrics, threshold_table  # noqa: E402

THRESHOLDS = [1.0, 5.0, 10.0, 15.0, 20.0]
PRECISIONS = ("float32", "bfloat16")


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n torch.mm in `dtype` on the CPU."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def decoder_flop(model, k: int) -> float:
    """Matrix-product FLOP of scoring one probe with every VAE of `model`: encoder once, decoder K times."""
    config = next(iter(model.vaes_.values())).config
    enc = [config.input_dim, *config.hidden_dims, 2 * config.latent_dim]
    dec = [config.latent_dim, *reversed(config.hidden_dims), config.input_dim]
    macs = sum(a * b for a, b in zip(enc, enc[1:])) + k * sum(a * b for a, b in zip(dec, dec[1:]))
    return 2.0 * len(model.vaes_) * macs


def trained_model(name: str, data: str, per_class: int, epochs: int) -> tuple:
    """The saved model benchmarks/models/<name>, else a flat model trained here; with where it came from."""
    def fit() -> FlatRegenClassifier:
        train = capped_subsample(load_dataset(shared_data(data), "train"), per_class, seed=0)
        return FlatRegenClassifier(epochs=epochs, random_state=0, scoring_precision="float32").fit(train.X, train.labels)

    model, folder, _ = load_or_train(MODELS / name, fit)
    trained = f"trained here: {per_class} images per class, at most {epochs} epochs, paper's VAE"
    return model, trained if folder is None else f"benchmarks/models/{name}"


def timed_decide(model, X, precision: str, adaptive: bool = False):
    """`model.decide(X)` in `precision` (adaptive K or the fixed K), and its seconds."""
    model.set_params(scoring_precision=precision, adaptive=adaptive)
    start = time.perf_counter()
    decision = model.decide(X)
    return decision, time.perf_counter() - start


def compare_precisions(model, test, unseen, repeats: int, peaks: dict) -> dict:
    """Speed and agreement of the two precisions on one model."""
    y_true = true_class_index(model, test)
    k = int(model.n_regenerations)
    timing_probes = test.X[: max(4, len(test) // 4)]
    best = {p: float("inf") for p in PRECISIONS}
    for _ in range(repeats):  # interleaved, so that outside load hits both alike
        for precision in PRECISIONS:
            best[precision] = min(best[precision], timed_decide(model, timing_probes, precision)[1])
    row = {"n_classes": len(model.classes_), "n_probes": len(test), "k": k}
    decisions = {}
    for precision in PRECISIONS:
        decision, _ = timed_decide(model, test.X, precision)
        verdict = model.judge(decision)
        unseen_verdict = model.judge(timed_decide(model, unseen.X, precision)[0])
        decisions[precision] = decision
        rate = len(timing_probes) / best[precision]
        row[f"{precision}_probes_per_s"] = round(rate, 2)
        gflops = rate * decoder_flop(model, k) / 1e9
        row[f"{precision}_gflops"] = round(gflops, 1)
        row[f"{precision}_share_of_peak"] = round(gflops / peaks[precision], 3)
        row[f"{precision}_accuracy"] = float(np.mean(decision.class_index == y_true))
        for r in threshold_table(y_true, decision.class_index, decision.kl, THRESHOLDS):
            row[f"{precision}_acc_at_thr_{r['threshold']:g}"] = r["accuracy"]
            row[f"{precision}_p_miss_at_thr_{r['threshold']:g}"] = r["p_miss"]
        row[f"{precision}_novelty_auroc"] = ood_metrics(1.0 - verdict.novelty, 1.0 - unseen_verdict.novelty)["auroc"]
        row[f"{precision}_kl_auroc"] = ood_metrics(-verdict.kl, -unseen_verdict.kl)["auroc"]
    exact, fast = decisions["float32"], decisions["bfloat16"]
    row["speedup_bfloat16"] = round(best["float32"] / best["bfloat16"], 2)
    row["decisions_equal"] = float(np.mean(exact.class_index == fast.class_index))
    row["rejections_equal_at_all_thresholds"] = float(np.mean(
        [(exact.kl < t) == (fast.kl < t) for t in THRESHOLDS]))
    row["max_acc_p_miss_diff_points"] = round(max(  # Acc is undefined (NaN) where both reject every probe
        100 * np.nan_to_num(abs(row[f"float32_{m}_at_thr_{t:g}"] - row[f"bfloat16_{m}_at_thr_{t:g}"]))
        for t in THRESHOLDS for m in ("acc", "p_miss")), 3)
    row["novelty_auroc_diff"] = round(abs(row["float32_novelty_auroc"] - row["bfloat16_novelty_auroc"]), 5)
    row["max_mean_distance_diff_nats"] = float(np.nanmax(np.abs(
        np.nanmean(exact.winner_distances, -1) - np.nanmean(fast.winner_distances, -1))))
    return row


def adaptive_on_bfloat16(model, test) -> dict:
    """Adaptive K in bfloat16 against the paper's fixed K in float32: speed and verdicts at the rule in force."""
    threshold = model.rejection_rule().kl_threshold
    exact, exact_s = timed_decide(model, test.X, "float32")
    fast, fast_s = timed_decide(model, test.X, "bfloat16", adaptive=True)
    model.set_params(adaptive=False)
    kept = lambda d: d.kl >= threshold  # noqa: E731
    return {"kl_threshold_in_force": threshold, "adaptive_bfloat16_speedup_vs_fixed_float32": round(exact_s / fast_s, 2),
            "adaptive_bfloat16_decisions_equal": float(np.mean(exact.class_index == fast.class_index)),
            "adaptive_bfloat16_verdicts_equal": float(np.mean(kept(exact) == kept(fast))),
            "adaptive_bfloat16_mean_draws": float(np.isfinite(fast.winner_distances).sum(1).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models and few probes (a smoke run)")
    args = parser.parse_args()
    quick = args.quick
    if not has_fast_bfloat16(torch.device("cpu")):
        print("note: this CPU has neither AMX nor AVX512-BF16; bfloat16 is emulated here", flush=True)
    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    print(f"matmul peaks: float32 {peaks['float32']:.0f}, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s", flush=True)
    fashion = load_dataset(shared_data("fashion_mnist"), "test")
    setups = [("mnist", "mnist_flat", 100 if quick else 1000, 2 if quick else 10, 40 if quick else 1000),
              ("emnist_bymerge", "emnist47_flat", 20 if quick else 300, 2 if quick else 10, 47 if quick else 470)]
    result = {"mode": "quick" if quick else "full", "fast_bfloat16_hardware": has_fast_bfloat16(torch.device("cpu"))}
    rows = []
    for data, name, per_class, epochs, n_probes in setups:
        model, source = trained_model(name, data, per_class, epochs)
        test = load_dataset(shared_data(data), "test")
        test = test.subset(np.random.default_rng(0).choice(len(test), n_probes, replace=False))
        unseen = fashion.subset(np.arange(n_probes))
        for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):  # best over the run
            peaks[precision] = max(peaks[precision], matmul_peak(dtype))
        row = {"model": name, "source": source, **compare_precisions(model, test, unseen, 2 if quick else 3, peaks)}
        if name == "mnist_flat":
            row.update(adaptive_on_bfloat16(model, test))
        rows.append(row)
        result.update({f"{name}_{k}": v for k, v in row.items() if k != "model"})
        print_table([row], ["model", "float32_probes_per_s", "bfloat16_probes_per_s", "speedup_bfloat16",
                            "bfloat16_share_of_peak", "decisions_equal", "max_acc_p_miss_diff_points",
                            "novelty_auroc_diff"])
    result.update({"float32_matmul_peak_gflops": round(peaks["float32"], 1),
                   "bfloat16_matmul_peak_gflops": round(peaks["bfloat16"], 1)})
    result["targets"] = ("bfloat16 >= 3x float32 probes/s; >= 50 % of the bfloat16 peak; decisions equal on "
                         ">= 99.9 %; Acc/P_miss within 0.05 pt; novelty AUROC within 0.001")
    for row in rows:
        met = (row["speedup_bfloat16"] >= 3 and row["bfloat16_share_of_peak"] >= 0.5
               and row["decisions_equal"] >= 0.999 and row["max_acc_p_miss_diff_points"] <= 0.05
               and row["novelty_auroc_diff"] <= 0.001)
        result[f"{row['model']}_targets_met"] = met
    print("wrote", write_result("scoring_precision" + ("_quick" if quick else ""), result))


if __name__ == "__main__":
    main()
