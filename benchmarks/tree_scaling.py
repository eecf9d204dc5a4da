"""Cost per probe against the number of classes M (10 to 1000), flat vs tree: VAE evaluations and wall time.

    python benchmarks/tree_scaling.py            # M = 10, 20, 47, 100, 200, 500, 1000
    python benchmarks/tree_scaling.py --quick    # M = 10, 47, 200

The many-class image set: a synthetic class is a pair (EMNIST ByMerge class c, transformation t); its
images are class c's images under t. Transformation t is the dihedral symmetry ``t % 8`` of the 28x28
square (rotations by 0/90/180/270 degrees, with or without a transpose) followed by a cyclic shift drawn
from ``numpy.random.default_rng(seed + t)`` (up to 4 pixels down and right) for t >= 8. The 47 x 22
pairs are shuffled with `seed` and the first M are used, so each M is a prefix of the next.

This benchmark measures cost, not accuracy: the VAEs are trained for one epoch on 6 images per class
(the cost of scoring does not depend on the weights), with hidden_dims=(128,), latent 15 and K=100 to keep
the M=1000 models (1000 flat + 1998 tree VAEs in memory at once) affordable on 2 cores and ~23 GB. Flat and tree score
the same probes batch by batch side by side (`regentree.evaluation.comparison.timed_side_by_side`).
Writes benchmarks/results/tree_scaling[_quick].json and .png.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from _common import RESULTS, print_table, shared_data, write_result
from regentree import FlatRegenClassifier, TreeRegenClassifier
from regentree.evaluation.comparison import timed_side_by_side
from regentree.data import load_dataset
from regentree.evaluation.plots import figure_png, scaling_figure

N_TRANSFORMS = 22  # 47 * 22 = 1034 >= 1000 classes
PER_CLASS = 6


def transform(images: np.ndarray, t: int, seed: int) -> np.ndarray:
    """Transformation t (see the module docstring) of images (n, 28, 28)."""
    out = np.rot90(images, k=t % 4, axes=(1, 2))
    if (t // 4) % 2:
        out = out.transpose(0, 2, 1)
    if t >= 8:
        down, right = np.random.default_rng(seed + t).integers(0, 5, size=2)
        out = np.roll(out, shift=(int(down), int(right)), axis=(1, 2))
    return np.ascontiguousarray(out)


def many_class_set(m: int, seed: int, emnist) -> tuple[np.ndarray, np.ndarray]:
    """PER_CLASS images of each of the first m synthetic classes: X (m * PER_CLASS, 784), y (m * PER_CLASS,)."""
    pairs = np.random.default_rng(seed).permutation(emnist.n_classes * N_TRANSFORMS)[:m]
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, pair in enumerate(pairs):
        c, t = divmod(int(pair), N_TRANSFORMS)
        pick = rng.choice(np.flatnonzero(emnist.y == c), size=PER_CLASS, replace=False)
        X.append(transform(emnist.X[pick].reshape(-1, 28, 28), t, seed).reshape(PER_CLASS, -1))
        y.append(np.full(PER_CLASS, label))
    return np.concatenate(X), np.concatenate(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--probes", type=int, default=10, help="probes timed per M")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [10, 47, 200] if args.quick else [10, 20, 47, 100, 200, 500, 1000]
    emnist = load_dataset(shared_data("emnist_bymerge"), "train", seed=args.seed)
    params = dict(hidden_dims=(128,), latent_dim=15, epochs=1, n_regenerations=100, validation_fraction=0.0,
                  patience=0, random_state=args.seed, rejection_target=None)
    rows = []
    for m in sizes:
        X, y = many_class_set(m, args.seed, emnist)
        flat = FlatRegenClassifier(**params).fit(X, y, image_shape=(28, 28))
        tree = TreeRegenClassifier(**params).fit(X, y, image_shape=(28, 28))
        probes = X[np.random.default_rng(args.seed).choice(len(X), size=args.probes, replace=False)]
        decisions, seconds = timed_side_by_side({"flat": flat, "tree": tree}, probes, batch_size=max(1, args.probes // 2))
        row = {
            "n_classes": m, "tree_depth": tree.depth_, "ceil_log2_m": math.ceil(math.log2(m)),
            "flat_vae_evaluations": float(decisions["flat"].n_vae_evaluations.mean()),
            "tree_vae_evaluations": float(decisions["tree"].n_vae_evaluations.mean()),
            "tree_vae_evaluations_max": int(decisions["tree"].n_vae_evaluations.max()),
            "flat_ms_per_probe": 1000 * seconds["flat"] / len(probes),
            "tree_ms_per_probe": 1000 * seconds["tree"] / len(probes),
        }
        row["speedup"] = row["flat_ms_per_probe"] / row["tree_ms_per_probe"]
        rows.append(row)
        print_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}], list(row))
        print(flush=True)
        del flat, tree
        save(rows, args)  # after every M, so a run cut short keeps what it measured


def save(rows: list[dict], args) -> None:
    name = "tree_scaling_quick" if args.quick else "tree_scaling"
    (RESULTS / f"{name}.png").write_bytes(figure_png(scaling_figure(
        rows, title=f"flat vs tree, hidden (128,), K=100, {args.probes} probes per M")))
    settings = {"mode": "quick" if args.quick else "full", "probes_per_m": args.probes, "threads": args.threads,
                "hidden_dims": [128], "latent_dim": 15, "n_regenerations": 100, "training": "1 epoch, 6 images per class",
                "tree_routing": "hard", "tree_flat_below": TreeRegenClassifier().flat_below,
                "plot": f"benchmarks/results/{name}.png"}
    print("wrote", write_result(name, {**settings, "rows": rows}), flush=True)


if __name__ == "__main__":
    main()
