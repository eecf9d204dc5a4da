"""Which novelty score rejects unseen objects in both directions? Raw distortion vs its corrections, side by side.

    python benchmarks/unseen.py --quick    # embedded 8x8 digits, classes 0-4 vs 5-9 and back, < 60 s on 2 cores
    python benchmarks/unseen.py            # MNIST <-> Fashion-MNIST and MNIST digits vs EMNIST letters, ~15 min

Each known data set gets one flat model whose class VAEs start from a base VAE trained on all its classes
(`base_epochs`). Every candidate statistic is turned into a class-conditional conformal p-value like the
library's novelty score (`NoveltyScorer`): the reference is the same statistic on held-out images of each
class, under its own VAE, and a probe is scored against its winning class. The candidates
(`regentree.rejection.novelty_scores` and two more measured here only):

- ``raw``: the winner's distortion (the library's score before this benchmark);
- ``base_ratio``: winner's distortion minus the base VAE's distortion of the same probe (Ren et al. 2019);
- ``complexity``: winner's distortion minus the PNG code length of the 8-bit probe in nats (Serrà et al. 2020);
- ``complexity_zlib``: the same with zlib's code length of the raw 8-bit pixels;
- ``typicality``: a two-sided p-value of the raw distortion (unusually low is as novel as unusually high;
  Nalisnick et al. 2019, "Detecting OOD inputs using typicality");
- ``raw_or_complexity``: the Bonferroni union of ``raw`` and ``complexity``, ``min(1, 2 min(p_raw, p_complexity))``:
  novel when the probe costs the class VAE unusually many nats, or unusually many beyond its code length.

Pairs (known model / unseen probes): MNIST / Fashion-MNIST, Fashion-MNIST / MNIST, and MNIST / EMNIST letters
(ByMerge's letter classes, a near-OOD set). Reports AUROC and FPR95 of 1 - p, and the shares of known and
unseen probes below p = 0.05. Writes benchmarks/results/unseen[_quick].json.
"""

from __future__ import annotations

import argparse
import time
import zlib

import numpy as np

from _common import print_table, shared_data, write_result
from regentree import FlatRegenClassifier
from regentree.rejection.conformal import conformal_p_values
from regentree.data import load_dataset
from regentree.data.dataset import Dataset
from regentree.evaluation.metrics import ood_metrics
from regentree.rejection.novelty_scores import code_length_nats, novelty_statistic
from regentree.rejection.novelty import NoveltyScorer
from regentree.scoring.regeneration import regenerate_distances
from regentree.scoring.statistics import summarize

CANDIDATES = ("raw", "base_ratio", "complexity", "complexity_zlib", "typicality", "raw_or_complexity")
P_REJECT = 0.05  # the p-value below which a probe counts as rejected unseen in the share columns
TARGETS = {"hard_auroc": 0.99, "easy_auroc": 0.999}  # Fashion-model/MNIST-unseen, MNIST-model/Fashion-unseen
SETTINGS = {
    "quick": {"model": dict(hidden_dims=(32,), latent_dim=4, epochs=30, base_epochs=20, batch_size=32, patience=0,
                            n_regenerations=30),
              "train_per_class": 100, "reference_per_class": 30, "n_probes": 300},
    "full": {"model": dict(hidden_dims=(500, 500), latent_dim=15, epochs=12, base_epochs=10, patience=3,
                           n_regenerations=100),
             "train_per_class": 2000, "reference_per_class": 300, "n_probes": 2000},
}


def two_sided_p_values(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Two-sided conformal p-value: twice the smaller tail, at most 1; `reference` sorted ascending."""
    upper = conformal_p_values(reference, scores)
    lower = (1.0 + np.searchsorted(reference, scores, side="right")) / (1.0 + reference.size)
    return np.minimum(1.0, 2.0 * np.minimum(upper, lower))


def zlib_code_length(X: np.ndarray) -> np.ndarray:
    """zlib (level 9) code length of each probe's raw 8-bit pixels, in nats."""
    images = np.rint(np.clip(X, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.array([len(zlib.compress(row.tobytes(), 9)) for row in images], dtype=np.float64) * 8.0 * np.log(2.0)


def distortions(model: FlatRegenClassifier, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's distortion under every class VAE (n, M) and under the base VAE (n,), with the model's noise bank."""
    per_class = summarize(model.class_distances(X), model.decision)
    base = regenerate_distances([model.base_vae_], X, n_regenerations=int(model.n_regenerations),
                                noise_variance=float(model.noise_variance), distance=model.distance,
                                seed=int(model.random_state), memory_budget_mb=float(model.memory_budget_mb))
    return per_class, summarize(base, model.decision)[:, 0]


def statistics(model: FlatRegenClassifier, X: np.ndarray, class_index, image_shape) -> dict[str, np.ndarray]:
    """Every candidate's statistic of probes `X` scored against `class_index` (None: each probe's winner)."""
    per_class, base = distortions(model, X)
    chosen = per_class.argmin(axis=1) if class_index is None else np.asarray(class_index)
    d = per_class[np.arange(len(X)), chosen]
    return {
        "class_index": chosen,
        "raw": d,
        "base_ratio": novelty_statistic("base_ratio", d, base_distortion=base),
        "complexity": novelty_statistic("complexity", d, code_length=code_length_nats(X, image_shape)),
        "complexity_zlib": novelty_statistic("complexity", d, code_length=zlib_code_length(X)),
        "typicality": d,
    }


def p_values(candidate: str, reference: dict, probes: dict) -> np.ndarray:
    """Class-conditional conformal p-values of one candidate for `probes` against the `reference` images."""
    cls_ref, cls = reference["class_index"], probes["class_index"]
    if candidate == "raw_or_complexity":
        return np.minimum(1.0, 2.0 * np.minimum(p_values("raw", reference, probes),
                                                p_values("complexity", reference, probes)))
    if candidate != "typicality":
        scorer = NoveltyScorer().fit({c: reference[candidate][cls_ref == c] for c in np.unique(cls_ref)})
        return scorer.score(cls, probes[candidate])
    out = np.empty(len(cls))
    for c in np.unique(cls):
        out[cls == c] = two_sided_p_values(np.sort(reference[candidate][cls_ref == c]), probes[candidate][cls == c])
    return out


def split_known(ds: Dataset, train_per_class: int, reference_per_class: int, seed: int) -> tuple[Dataset, Dataset]:
    """Disjoint stratified training and reference subsets of a training split."""
    rng = np.random.default_rng(seed)
    train, reference = [], []
    for c in range(ds.n_classes):
        rows = rng.permutation(np.flatnonzero(ds.y == c))
        train.append(rows[:train_per_class])
        reference.append(rows[train_per_class : train_per_class + reference_per_class])
    return ds.subset(np.sort(np.concatenate(train))), ds.subset(np.sort(np.concatenate(reference)))


def sample(ds: Dataset, n: int, seed: int) -> Dataset:
    """`n` random probes of `ds` (all of them when it is smaller)."""
    return ds.subset(np.sort(np.random.default_rng(seed).permutation(len(ds))[:n]))


def quick_data(seed: int) -> dict:
    """The embedded digits cut into two known halves, 0-4 and 5-9, and a faint copy of 5-9 (a 'simple' unseen set)."""
    train, test = load_dataset("digits", "train", seed=seed), load_dataset("digits", "test", seed=seed)
    low, high = (lambda ds: ds.subset(ds.y < 5)), (lambda ds: ds.subset(ds.y >= 5))
    faint = high(test)
    faint = Dataset(faint.X * np.float32(0.25), faint.y, faint.class_names, faint.image_shape, "faint digits")
    return {"known": {"digits 0-4": (relabel(low(train)), relabel(low(test))),
                      "digits 5-9": (relabel(high(train)), relabel(high(test)))},
            "pairs": [("digits 0-4", "digits 5-9", high(test)), ("digits 5-9", "digits 0-4", low(test)),
                      ("digits 0-4", "faint digits 5-9", faint)]}


def relabel(ds: Dataset) -> Dataset:
    """`ds` with only the classes it holds, renumbered from 0."""
    present, y = np.unique(ds.y, return_inverse=True)
    return Dataset(ds.X, y.astype(np.int64), tuple(ds.class_names[c] for c in present), ds.image_shape, ds.source)


def full_data(seed: int) -> dict:
    """MNIST and Fashion-MNIST (train and test splits) and the letter classes of EMNIST ByMerge."""
    mnist = load_dataset(shared_data("mnist"), "train"), load_dataset(shared_data("mnist"), "test")
    fashion = load_dataset(shared_data("fashion_mnist"), "train"), load_dataset(shared_data("fashion_mnist"), "test")
    emnist = load_dataset(shared_data("emnist_bymerge"), "all")
    letters = emnist.subset(np.isin(emnist.y, [i for i, n in enumerate(emnist.class_names) if n.isalpha()]))
    return {"known": {"mnist": mnist, "fashion_mnist": fashion},
            "pairs": [("mnist", "fashion_mnist", fashion[1]), ("fashion_mnist", "mnist", mnist[1]),
                      ("mnist", "emnist_letters", letters)]}


def rows_for_known(name: str, train_split: Dataset, test_split: Dataset, unseen_sets: dict, setting: dict,
                   seed: int) -> tuple[list[dict], dict]:
    """Train one model on `name`, score its reference, known and unseen probes, and compare every candidate."""
    train, reference = split_known(train_split, setting["train_per_class"], setting["reference_per_class"], seed)
    known = sample(test_split, setting["n_probes"], seed)
    model = FlatRegenClassifier(**setting["model"], rejection_target=None, random_state=seed)
    started = time.perf_counter()
    model.fit(train.X, train.labels, image_shape=train.image_shape)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ref = statistics(model, reference.X, reference.y, train.image_shape)
    probes = statistics(model, known.X, None, train.image_shape)
    unseen = {u: statistics(model, sample(ds, setting["n_probes"], seed).X, None, train.image_shape)
              for u, ds in unseen_sets.items()}
    score_seconds = time.perf_counter() - started
    rows = []
    for unseen_name, scored in unseen.items():
        for candidate in CANDIDATES:
            p_known, p_unseen = p_values(candidate, ref, probes), p_values(candidate, ref, scored)
            ood = ood_metrics(1.0 - p_known, 1.0 - p_unseen)
            rows.append({"pair": f"{name} vs {unseen_name}", "candidate": candidate,
                         "auroc": ood["auroc"], "fpr95": ood["fpr95"], "aupr_out": ood["aupr_out"],
                         "known_rejected_p05": float((p_known < P_REJECT).mean()),
                         "unseen_rejected_p05": float((p_unseen < P_REJECT).mean())})
    info = {"train_seconds": round(train_seconds, 1), "score_seconds": round(score_seconds, 1),
            "known_accuracy": float((probes["class_index"] == known.y).mean()),
            "n_train": len(train), "n_reference": len(reference), "n_known_probes": len(known),
            "n_unseen_probes": {u: len(sample(ds, setting["n_probes"], seed)) for u, ds in unseen_sets.items()}}
    return rows, info


def target_checks(rows: list[dict], hard: str, easy: str) -> dict:
    """Per candidate: AUROC on the hard and easy pairs and whether both targets are met."""
    auroc = {(r["pair"], r["candidate"]): r["auroc"] for r in rows}
    checks = {}
    for candidate in CANDIDATES:
        h, e = auroc.get((hard, candidate)), auroc.get((easy, candidate))
        if h is None or e is None:
            continue
        checks[candidate] = {"hard_auroc": h, "easy_auroc": e, "hard_gap": max(0.0, TARGETS["hard_auroc"] - h),
                             "met": h >= TARGETS["hard_auroc"] and e >= TARGETS["easy_auroc"]}
    best = max(checks, key=lambda c: min(checks[c]["hard_auroc"], checks[c]["easy_auroc"]), default=None)
    return {"by_candidate": checks, "best_in_both": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="embedded digits and a tiny model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    setting = SETTINGS[mode]
    data = quick_data(args.seed) if args.quick else full_data(args.seed)
    rows, infos = [], {}
    for name, (train_split, test_split) in data["known"].items():
        unseen_sets = {u: ds for k, u, ds in data["pairs"] if k == name}
        pair_rows, infos[name] = rows_for_known(name, train_split, test_split, unseen_sets, setting, args.seed)
        rows += pair_rows
    print_table([{**r, **{k: f"{r[k]:.4f}" for k in r if isinstance(r[k], float)}} for r in rows], list(rows[0]))
    (easy, _), (hard, _) = [(f"{k} vs {u}", None) for k, u, _ in data["pairs"][:2]]
    checks = target_checks(rows, hard=hard, easy=easy)
    print(f"\nbest in both directions: {checks['best_in_both']} "
          f"(targets: AUROC >= {TARGETS['hard_auroc']} on {hard}, >= {TARGETS['easy_auroc']} on {easy})")
    result = {"mode": mode, "model": {k: list(v) if isinstance(v, tuple) else v for k, v in setting["model"].items()},
              "p_reject": P_REJECT, "targets": TARGETS, "hard_pair": hard, "easy_pair": easy, **checks,
              "models": infos, "rows": rows}
    print("wrote", write_result("unseen" + ("_quick" if args.quick else ""), result))


if __name__ == "__main__":
    main()
