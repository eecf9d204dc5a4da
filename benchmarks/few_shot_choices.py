"""What lifts the tree with few images per class: training and routing choices side by side, on EMNIST-47.

    python benchmarks/few_shot_choices.py                        # 20 images per class, 1,000 probes
    python benchmarks/few_shot_choices.py --per-class 50 --name few_shot_choices_50

The training variants (each a flat and a tree model with the same VAE settings as
`benchmarks/large_label_sets.py`: (256, 256), latent 15, 30 epochs, K = 50):

- ``scratch``: every VAE from a random initialisation (``base_epochs=0``, the old default);
- ``base``: every class and node VAE from one base VAE (``base_epochs="auto"``, the new default);
- ``base_cross``: as ``base``, the tree built from the leaf VAEs' cross distortions instead of class means.

Each trained tree is then scored with these routings of the same VAEs: hard (``flat_below=1``), hard
comparing the leaves of nodes of at most 6 (the default) or 12 classes, and soft with a beam of 2.
Writes benchmarks/results/<name>.json (keys ``<variant>_<model>_<metric>``).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from _common import print_table, write_result
from large_label_sets import emnist_row, selective
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.evaluation.comparison import timed_side_by_side

VARIANTS = {"scratch": {"base_epochs": 0}, "base": {"base_epochs": "auto"},
            "base_cross": {"base_epochs": "auto", "similarity": "cross_distortion"}}
ROUTINGS = {"tree_hard": {"routing": "hard", "flat_below": 1}, "tree_flat6": {"routing": "hard", "flat_below": 6},
            "tree_flat12": {"routing": "hard", "flat_below": 12}, "tree_soft2": {"routing": "soft", "beam_width": 2}}


def run_variant(name: str, train, test, args) -> dict:
    """Flat and every routing of one tree for training variant `name`, keyed `<name>_<model>_<metric>`."""
    params = dict(latent_dim=15, hidden_dims=(256, 256), epochs=args.epochs, n_regenerations=args.k,
                  random_state=args.seed, **VARIANTS[name])
    labels = train.labels
    out, fitted = {}, {}
    for kind, cls in (("flat", FlatRegenClassifier), ("tree", TreeRegenClassifier)):
        kind_params = {k: v for k, v in params.items() if kind == "tree" or k != "similarity"}
        began = time.perf_counter()
        fitted[kind] = cls(**kind_params).fit(train.X, labels, image_shape=train.image_shape)
        out[f"{name}_{kind}_training_seconds"] = time.perf_counter() - began
    models = {"flat": fitted["flat"],
              **{key: copy.copy(fitted["tree"]).set_params(**routing) for key, routing in ROUTINGS.items()}}
    decisions, seconds = timed_side_by_side(models, test.X, batch_size=100)
    names = test.labels
    for key, decision in decisions.items():
        correct = np.asarray(models[key].classes_)[decision.class_index] == names
        out.update({f"{name}_{k}": v for k, v in selective(key, correct, decision.kl).items()})
        out[f"{name}_{key}_vae_evaluations_mean"] = float(decision.n_vae_evaluations.mean())
        out[f"{name}_{key}_probes_per_s"] = len(test) / seconds[key]
        if key != "flat":
            out[f"{name}_{key}_gap_pt"] = 100 * (out[f"{name}_{key}_accuracy"] - out[f"{name}_flat_accuracy"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="few_shot_choices")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = emnist_row(args.per_class, args)
    result = {"per_class": args.per_class, "n_train": len(train), "n_test": len(test), "epochs_max": args.epochs,
              "n_regenerations": args.k, "hidden_dims": [256, 256], "latent_dim": 15}
    for name in args.variants:
        result.update(run_variant(name, train, test, args))
        rows = [{"variant": name, "model": key, "accuracy": f"{result[f'{name}_{key}_accuracy']:.4f}",
                 "gap_pt": f"{result.get(f'{name}_{key}_gap_pt', 0.0):+.1f}",
                 "evaluations": f"{result[f'{name}_{key}_vae_evaluations_mean']:.1f}"}
                for key in ("flat", *ROUTINGS)]
        print_table(rows, ["variant", "model", "accuracy", "gap_pt", "evaluations"])
        print("wrote", write_result(args.name, result), flush=True)


if __name__ == "__main__":
    main()
