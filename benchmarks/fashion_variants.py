"""Which training variant lifts Fashion-MNIST accuracy: chosen on a selection split, not on the test set.

    python benchmarks/fashion_variants.py --device cuda   # full: 7 variants of 10 VAEs, K=300 (minutes on a GPU)
    python benchmarks/fashion_variants.py --quick         # 100 train images/class, 2 epochs, 200 probes, K=20
    python benchmarks/fashion_variants.py --variants l25_base40_fixed150 --likelihood-only --n-jobs 2
                                                          # one variant on a 2-core CPU, likelihood rule only
    python benchmarks/fashion_variants.py --variants l20_base40_fixed150 --likelihood-only --n-jobs 2 --seed 1
                                                          # the same with other initial weights (same splits)
    python benchmarks/fashion_variants.py --variants conv_l20 --likelihood-only --n-jobs 2 --k 100
                                                          # convolutional class VAEs, 100 re-generations
    python benchmarks/fashion_variants.py --variants ensemble_l20_conv_l20 --likelihood-only --n-jobs 2 --k 100
                                                          # the MLP and conv variants above pooled (RegenEnsemble)

500 training images per class (5,000, seed 0) are held out as a selection split; every variant trains on
the other 55,000 and is scored on the selection split and on the 10,000 test probes by five rules (mean and
median cross-entropy at sigma^2 = 1, mean cross-entropy at sigma^2 = 0.5, mean and likelihood of
`neg_log_weight`). A variant is chosen by its selection accuracy; the test accuracy is reported beside it. An ensemble variant
names other variants as members and pools their re-generations per class (`regentree.RegenEnsemble`). Full-mode
models are kept in benchmarks/models/fashion_<variant>_seed<S> and reused (train seconds are then null).
Writes benchmarks/results/fashion_variants[_quick].json (keys `<variant>__<split>_acc__<distance>_s<sigma2>_<stat>`);
a run of chosen `--variants` writes fashion_variants_<device>_<variants>[_quick].json instead, so it never
overwrites the run that chose among all of them.
"""

from __future__ import annotations

import argparse

import numpy as np

from _common import MODELS, load_or_train, print_table, shared_data, write_result
from regentree import FlatRegenClassifier, RegenEnsemble
from regentree.data import load_dataset
from regentree.backends.devices import resolve_device
from regentree.scoring.statistics import summarize

VARIANTS = {  # name -> estimator parameters beyond the paper's (500, 500) MLP and 100 epochs
    "l25_es": dict(latent_dim=25),
    "l25_base40": dict(latent_dim=25, base_epochs=40),
    "l25_fixed150": dict(latent_dim=25, patience=0, epochs=150),
    "l50_es": dict(latent_dim=50),
    "l25_cosine100": dict(latent_dim=25, patience=0, learning_rate_schedule="cosine"),
    "h1000_l25_es": dict(latent_dim=25, hidden_dims=(1000, 1000)),
    "l25_base40_fixed150": dict(latent_dim=25, base_epochs=40, patience=0, epochs=150),
    "l20_base40_fixed150": dict(latent_dim=20, base_epochs=40, patience=0, epochs=150),  # Table III-base's best latent on CPU
    # beyond the paper: a convolutional VAE per class (two 4x4 stride-2 convolutions, 32 and 64 channels, dense 256)
    "conv_l20": dict(architecture="conv", hidden_dims=(32, 64, 256), latent_dim=20, training_precision="bfloat16"),
    # beyond the paper: the two above pooled per class, an equal-weight mixture of an MLP and a conv VAE
    "ensemble_l20_conv_l20": dict(members=("l20_base40_fixed150", "conv_l20")),
}
RULES = (("cross_entropy", 1.0, ("mean", "median")), ("neg_log_weight", 1.0, ("likelihood", "mean")),
         ("cross_entropy", 0.5, ("mean",)))
LIKELIHOOD_RULE = (("neg_log_weight", 1.0, ("likelihood",)),)  # the rule the full run selected


def splits(quick: bool):
    """(fit X, fit y, selection X, selection y, test X, test y, class names) of Fashion-MNIST."""
    folder = shared_data("fashion_mnist")
    train, test = load_dataset(folder, "train"), load_dataset(folder, "test")
    rng = np.random.default_rng(0)
    held = np.concatenate([rng.choice(np.flatnonzero(train.y == c), 500, replace=False) for c in range(10)])
    mask = np.ones(len(train), bool)
    mask[held] = False
    fit_X, fit_y, sel_X, sel_y = train.X[mask], train.y[mask], train.X[held], train.y[held]
    test_X, test_y = test.X, test.y
    if quick:
        keep = np.concatenate([np.flatnonzero(fit_y == c)[:100] for c in range(10)])
        fit_X, fit_y = fit_X[keep], fit_y[keep]
        sel_X, sel_y, test_X, test_y = sel_X[:200], sel_y[:200], test_X[:200], test_y[:200]
    return fit_X, fit_y, sel_X, sel_y, test_X, test_y, train.class_names


def trained_variant(name: str, data: tuple, args, k: int, device: str):
    """(fitted model of variant `name`, training seconds or None if reused): an ensemble of its members' models,
    else a flat model reused from benchmarks/models (full mode) or trained now (and kept there in full mode)."""
    params = VARIANTS[name]
    if "members" in params:
        parts = [trained_variant(member, data, args, k, device) for member in params["members"]]
        seconds = [s for _, s in parts]
        return RegenEnsemble.from_fitted([model for model, _ in parts]), None if None in seconds else sum(seconds)
    folder = None if args.quick else MODELS / f"fashion_{name}_seed{args.seed}"
    if args.quick:
        params = dict(params, epochs=2, base_epochs=min(params.get("base_epochs", 0), 1))
    fit_X, fit_y, names = data

    def fit() -> FlatRegenClassifier:
        model = FlatRegenClassifier(**params, n_regenerations=k, device=device, n_jobs=args.n_jobs,
                                    random_state=args.seed, rejection_target=None)
        return model.fit(fit_X, np.asarray(names)[fit_y], image_shape=(28, 28))

    model, _, seconds = load_or_train([folder], fit, keep=folder)
    return model.set_params(n_regenerations=k, device=device), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="train and score only these variants (default: all)")
    parser.add_argument("--likelihood-only", action="store_true",
                        help="score only the likelihood rule (neg_log_weight, sigma^2 = 1), not all five")
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes that train the class VAEs")
    parser.add_argument("--k", type=int, default=None,
                        help="re-generations per probe and VAE (default: 300, 20 with --quick)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the VAEs' initialisation and training (the splits stay those of seed 0)")
    args = parser.parse_args()
    variants = {name: VARIANTS[name] for name in args.variants}
    rules = LIKELIHOOD_RULE if args.likelihood_only else RULES
    device = str(resolve_device(args.device))
    fit_X, fit_y, sel_X, sel_y, test_X, test_y, names = splits(args.quick)
    result = {"mode": "quick" if args.quick else "full", "device": device, "n_fit": len(fit_X),
              "n_selection": len(sel_X), "n_test": len(test_X),
              "n_regenerations": args.k or (20 if args.quick else 300),
              "n_jobs": args.n_jobs, "seed": args.seed}
    rows = []
    for name in variants:
        model, seconds = trained_variant(name, (fit_X, fit_y, names), args, result["n_regenerations"], device)
        result[f"{name}__train_seconds"] = None if seconds is None else round(seconds, 1)
        result[f"{name}__epochs_run"] = [info["epochs_run"] for info in model.training_info_.values()]
        row = {"variant": name}
        for distance, sigma2, stats in rules:
            model.set_params(distance=distance, noise_variance=sigma2)
            for split, X, y in (("sel", sel_X, sel_y), ("test", test_X, test_y)):
                distances = model.class_distances(X)
                for stat in stats:
                    accuracy = float(np.mean(summarize(distances, stat).argmin(1) == y))
                    result[f"{name}__{split}_acc__{distance}_s{sigma2}_{stat}"] = accuracy
                    if split == "sel" or stat == "likelihood" or (distance, sigma2, stat) == ("cross_entropy", 1.0, "mean"):
                        row[f"{split} {distance[:7]} {stat}"] = f"{100 * accuracy:.2f}"
        rows.append(row)
        print(name, row, flush=True)
    best = max(variants, key=lambda n: max(v for k, v in result.items() if k.startswith(f"{n}__sel_acc__")))
    rule = max((k for k in result if k.startswith(f"{best}__sel_acc__")), key=result.get).split("__")[-1]
    result.update({"selected_variant": best, "selected_rule": rule,
                   "selected_test_accuracy": result[f"{best}__test_acc__{rule}"]})
    print_table(rows, list(rows[0]))
    print(f"selected on the selection split among {len(variants)} variant(s): {best}, {rule}: test accuracy {100 * result['selected_test_accuracy']:.2f} %")
    name = "fashion_variants" if len(variants) == len(VARIANTS) else "_".join(["fashion_variants", device, *variants])
    name += f"_seed{args.seed}" if args.seed else ""
    name += f"_k{args.k}" if args.k else ""
    print("wrote", write_result(name + ("_quick" if args.quick else ""), result))


if __name__ == "__main__":
    main()
