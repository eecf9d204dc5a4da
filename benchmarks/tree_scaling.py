"""Cost per probe against the number of classes M (10 to 1000), flat vs tree: VAE evaluations and wall time.

    python benchmarks/tree_scaling.py            # M = 10, 20, 47, 100, 200, 500, 1000
    python benchmarks/tree_scaling.py --quick    # M = 10, 47, 200
    python benchmarks/tree_scaling.py --efficiency [--quick]   # per-evaluation speed, tree vs flat: M = 47, 1000

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

``--efficiency`` (issue 28) measures how fast tree scoring runs per VAE evaluation next to flat scoring, at
M = 47 and 1000 (quick: M = 10 and 47, few probes): flat's probes x M evaluations per second against the tree's
evaluations (`Decision.n_vae_evaluations`) per second, timed side by side on the same probes (the fastest of
`--repeats` runs), for the
tree's level-batched scoring, for the previous scoring (one stack and noise bank per node, chunks sized
for every node's VAE: a minimal copy lives below as the reference), and for per-node scoring with the new
chunks, which separates the two changes. Writes benchmarks/results/tree_efficiency[_quick].json.
"""

from __future__ import annotations

import argparse
import copy
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
TARGET_SHARE = 0.95  # issue 28: tree scoring keeps >= 95 % of flat's speed per VAE evaluation


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


def model_params(seed: int) -> dict:
    """The estimators' parameters: tiny VAEs trained for one epoch (the cost of scoring does not depend on the weights)."""
    return dict(hidden_dims=(128,), latent_dim=15, epochs=1, n_regenerations=100, validation_fraction=0.0,
                patience=0, random_state=seed, rejection_target=None)


def previous_scoring(tree: TreeRegenClassifier, chunks_too: bool = True) -> TreeRegenClassifier:
    """`tree` scoring as before level batching: each node of a level from its own stack and noise bank and, with
    `chunks_too`, probes decided in chunks sized for the distances of every node's VAE (the reference)."""
    old = copy.copy(tree)
    old._level_distances = lambda keys, X, requests: [
        old._distances([keys[i] for i in positions], X[idx]) for positions, idx in requests]
    if chunks_too:
        old._vaes_held_per_probe = lambda: len(old.vaes_)
    return old


def same_decisions(decisions: dict) -> dict:
    """Level vs per-node scoring of the same chunks: equal to the bit? Vs the previous scoring, whose chunks give
    other matrix product sizes: the fields not equal (classes, evaluations) or not close (KL, distances, scores)."""
    fields = ("class_index", "n_vae_evaluations", "kl", "winner_distances", "class_scores")
    level, per_node, previous = (decisions[k] for k in ("tree_level", "tree_per_node", "tree_previous"))
    return {
        "level_decisions_equal_per_node": all(
            np.array_equal(getattr(level, f), getattr(per_node, f), equal_nan=True) for f in fields),
        "level_fields_off_previous": [f for f in fields if not (
            np.array_equal(getattr(level, f), getattr(previous, f)) if f in fields[:2] else
            np.allclose(getattr(level, f), getattr(previous, f), rtol=1e-5, atol=1e-6, equal_nan=True))],
    }


def efficiency(args, emnist) -> None:
    """Per-evaluation speed of tree scoring (level-batched and previous) against flat scoring, side by side."""
    rows = []
    for m in [10, 47] if args.quick else [47, 1000]:
        X, y = many_class_set(m, args.seed, emnist)
        flat = FlatRegenClassifier(**model_params(args.seed)).fit(X, y, image_shape=(28, 28))
        tree = TreeRegenClassifier(**model_params(args.seed)).fit(X, y, image_shape=(28, 28))
        models = {"flat": flat, "tree_level": tree, "tree_per_node": previous_scoring(tree, chunks_too=False),
                  "tree_previous": previous_scoring(tree)}
        probes = X[np.random.default_rng(args.seed).choice(len(X), size=min(args.probes, len(X)), replace=False)]
        timed_side_by_side(models, probes[:2], batch_size=2)  # warm-up: first calls allocate and import
        seconds = dict.fromkeys(models, np.inf)
        for _ in range(args.repeats):  # the fastest of a few side-by-side runs: the machine may be shared
            decisions, run = timed_side_by_side(models, probes, batch_size=len(probes))
            seconds = {name: min(seconds[name], run[name]) for name in models}
        speed = {name: float(decisions[name].n_vae_evaluations.sum()) / seconds[name] for name in models}
        row = {"n_classes": m, "probes": len(probes), "tree_vae_evaluations": float(decisions["tree_level"].n_vae_evaluations.mean()),
               **{f"{name}_evaluations_per_s": v for name, v in speed.items()},
               "tree_share_of_flat_eval_speed": speed["tree_level"] / speed["flat"],
               "tree_previous_share_of_flat_eval_speed": speed["tree_previous"] / speed["flat"],
               "tree_per_node_share_of_flat_eval_speed": speed["tree_per_node"] / speed["flat"],
               **same_decisions(decisions)}
        rows.append(row)
        print_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}], list(row))
        print(flush=True)
        del flat, tree, models
        settings = {"mode": "quick" if args.quick else "full", "threads": args.threads, "repeats": args.repeats,
                    "timing": "fastest of the repeats, each one decide call per model on all the probes",
                    "hidden_dims": [128],
                    "latent_dim": 15, "n_regenerations": 100, "training": "1 epoch, 6 images per class",
                    "tree_routing": "hard", "tree_flat_below": TreeRegenClassifier().flat_below,
                    "memory_budget_mb": TreeRegenClassifier().memory_budget_mb, "target_share": TARGET_SHARE,
                    "target_met": all(r["tree_share_of_flat_eval_speed"] >= TARGET_SHARE for r in rows)}
        name = "tree_efficiency_quick" if args.quick else "tree_efficiency"
        print("wrote", write_result(name, {**settings, "rows": rows}), flush=True)  # after every M


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--efficiency", action="store_true",
                        help="per-evaluation speed of tree vs flat scoring (writes tree_efficiency[_quick].json)")
    parser.add_argument("--probes", type=int, default=None,
                        help="probes timed per M (default 10; with --efficiency 400, quick 20)")
    parser.add_argument("--repeats", type=int, default=2, help="--efficiency: side-by-side runs, the fastest kept")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    emnist = load_dataset(shared_data("emnist_bymerge"), "train", seed=args.seed)
    if args.efficiency:
        args.probes = args.probes or (20 if args.quick else 400)
        return efficiency(args, emnist)
    args.probes = args.probes or 10
    sizes = [10, 47, 200] if args.quick else [10, 20, 47, 100, 200, 500, 1000]
    params = model_params(args.seed)
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
