"""Adding and removing classes of a fitted estimator without re-training the rest.

Flat models train one new VAE per added class and drop one per removed class (`FlatRegenClassifier`
calls the checks here). Tree models place a new class beside the node it is most alike, keep the depth
within ``ceil(log2 M) + 1``, and re-train only the group VAEs whose class sets changed: the path from
the insertion point up. Group VAEs need samples of every class under them, but a fitted model keeps no
training data; the samples of the old classes are *replayed* from their own leaf VAEs (decoded draws
from the prior, as many as the class had at fit time), so adding a class needs only the new class's data.

Every operation is all-or-nothing: the checks run before anything changes, and a failure while training
restores the estimator's fitted state as it was.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import numpy as np
import torch

from regentree.data import class_indices
from regentree.errors import InvalidInputError
from regentree.estimators.keys import node_key, task_seed
from regentree.progress import ProgressCallback
from regentree.scoring.statistics import summarize
from regentree.tree import ClassTree, build_tree
from regentree.tree.similarity import cross_distortion_distance, mean_distance

REPLAY_SAMPLES = 500  # replayed samples of a class whose fit-time sample count is not recorded
PLACEMENT_SAMPLES = 20  # samples per class scored by every leaf VAE for the cross-distortion similarity

_KINDS = {"i": ("an integer", "integers"), "U": ("a string", "strings"), "f": ("a float", "floats"),
          "b": ("a bool", "bools")}


@dataclass(frozen=True)
class ClassUpdate:
    """What one `add_class` / `remove_class` call changed.

    Attributes
    ----------
    operation : {"add", "remove"}
    label : object
        The class added or removed.
    trained : tuple of str
        Keys of the VAEs trained by the call (new or re-trained), in training order.
    dropped : tuple of str
        Keys of the VAEs the call deleted.
    seconds : float
        Wall time of the call.
    placement : dict
        Tree models: where the class went (``{"beside_node": ..., "beside_classes": [...], "depth": ...}``
        for an add, the depth after a removal); empty for flat models.
    """

    operation: str
    label: object
    trained: tuple[str, ...]
    dropped: tuple[str, ...]
    seconds: float
    placement: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form."""
        label = self.label.item() if hasattr(self.label, "item") else self.label
        return {"operation": self.operation, "label": label, "trained": list(self.trained),
                "dropped": list(self.dropped), "seconds": round(self.seconds, 3), "placement": self.placement}


@contextmanager
def transaction(model) -> Iterator[None]:
    """Give the model back its fitted state (`_fitted_state`, taken on entry) if the block raises."""
    saved = model._fitted_state()
    try:
        yield
    except BaseException:
        model._set_fitted_state(saved)
        raise


def _label_kind(value) -> str:
    kind = np.asarray(value).dtype.kind
    return "i" if kind == "u" else ("U" if kind == "S" else kind)


def check_label_kind(model, label) -> None:
    """Raise `InvalidInputError` if `label` is not of the same kind as the model's classes (or not a scalar)."""
    if np.ndim(label) != 0 or label is None:
        raise InvalidInputError(f"label must be a single class name or number, got {label!r}")
    expected, got = _label_kind(model.classes_), _label_kind(label)
    if expected != got:
        one = _KINDS.get(got, (np.asarray(label).dtype.name,))[0]
        many = _KINDS.get(expected, ("", model.classes_.dtype.name))[1]
        example = model.classes_.tolist()[0]
        raise InvalidInputError(f"label {label!r} is {one}, but the model's classes are {many} like {example!r}")


def check_new_class(model, X, label) -> tuple[np.ndarray, int]:
    """Validate the data and label of a class to add.

    Parameters
    ----------
    model : fitted BaseRegenClassifier
    X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
        Images of the new class only, matching the model's image shape.
    label : scalar
        Name of the new class, of the same kind (integer / string) as `model.classes_`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32 (in [0, 1] for a Bernoulli model)
    index : int
        Position of `label` in the sorted class list after the addition.
    """
    model._check_fitted()
    check_label_kind(model, label)
    if label in set(model.classes_.tolist()):
        raise InvalidInputError(f"add_class: class {label!r} already exists in the model; remove it first")
    X = model._check_inputs(X, name=f"add_class data for {label!r}", image_shape=model.image_shape_)
    minimum = model._training_config().min_samples
    if len(X) < minimum:
        raise InvalidInputError(f"add_class: class {label!r} has {len(X)} samples; a class needs at least {minimum}")
    return X, int(np.searchsorted(model.classes_, label))


def check_known_class(model, label, minimum_left: int = 2) -> int:
    """Index of an existing class to remove; `InvalidInputError` if unknown or too few classes would remain."""
    model._check_fitted()
    check_label_kind(model, label)
    if label not in set(model.classes_.tolist()):
        shown = ", ".join(repr(c) for c in model.classes_.tolist()[:10])
        raise InvalidInputError(f"remove_class: class {label!r} is not in the model (it has {shown})")
    if len(model.classes_) - 1 < minimum_left:
        raise InvalidInputError(
            f"remove_class: the model has {len(model.classes_)} classes; a classifier keeps at least {minimum_left}"
        )
    return int(class_indices(model.classes_, [label], where="remove_class")[0])


def classes_with(classes: np.ndarray, label, index: int) -> np.ndarray:
    """`classes` with `label` inserted at `index`, in a dtype wide enough for every value."""
    values = classes.tolist()
    values.insert(index, label)
    return np.array(values, dtype=np.result_type(classes.dtype, np.asarray(label).dtype))


def fresh_key(taken, prefix: str, start: int) -> str:
    """First ``f"{prefix}_{n}"`` with ``n >= start`` that is not in `taken` (so its training seed is new)."""
    n = start
    while f"{prefix}_{n}" in taken:
        n += 1
    return f"{prefix}_{n}"


def depth_limit(n_classes: int) -> int:
    """The depth promise of a tree of `n_classes` classes: ``ceil(log2 M) + 1``."""
    return math.ceil(math.log2(n_classes)) + 1


# --------------------------------------------------------------------------- tree models
def replay_class(model, c: int) -> np.ndarray:
    """Samples of class `c` decoded from its own leaf VAE, as many as it had at fit time.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32
        The decoder's means (Bernoulli: pixel means in [0, 1]) for latent draws z ~ N(0, I), seeded by the VAE's key.
    """
    key = model.winner_key(np.array([c]))[0]
    n = int(model.training_info_.get(key, {}).get("n_samples") or REPLAY_SAMPLES)
    vae = model.vaes_[key]
    generator = torch.Generator().manual_seed(task_seed(model.random_state, f"replay_{key}"))
    z = torch.randn(n, vae.config.latent_dim, generator=generator)
    with torch.no_grad():
        return vae.output_mean(vae.decode(z)).numpy().astype(np.float32)


def class_distance_matrix(model, samples: list[np.ndarray], keys: list[str]) -> np.ndarray:
    """The tree's similarity measure between the classes whose samples and leaf VAE keys are given.

    Parameters
    ----------
    samples : list of ndarray of shape (n_i, n_features)
        Samples of each class (real or replayed).
    keys : list of str
        Key of each class's own VAE (used by ``similarity="cross_distortion"``).

    Returns
    -------
    ndarray of shape (len(samples), len(samples))
    """
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(samples)])
    if model.similarity == "mean":
        return mean_distance(model._standardized(np.concatenate(samples)), owner, len(samples))
    picked = [s[:PLACEMENT_SAMPLES] for s in samples]
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(picked)])
    scores = summarize(model._distances(keys, np.concatenate(picked)), model.decision)  # (n, len(keys))
    return cross_distortion_distance(np.stack([scores[owner == i].mean(axis=0) for i in range(len(samples))]))


def choose_sibling(tree: ClassTree, distance: np.ndarray, limit: int) -> int:
    """Node beside which a new class goes.

    Among the nodes where the new leaf keeps the tree within depth `limit`, the one whose classes are
    closest to the new class on average (`distance` has shape (M,), old class indices); ties go to the
    deeper node. A leaf at depth < limit always exists when ``limit >= ceil(log2(M + 1)) + 1`` (Kraft),
    so the choice is never empty.
    """
    best = None
    for node in tree.graph.nodes:
        classes = tree.classes(node)
        height = max(tree.node_depth(tree.leaf_of_class(c)) for c in classes) - tree.node_depth(node)
        if tree.node_depth(node) + 1 + height > limit:
            continue
        candidate = (float(np.mean(distance[list(classes)])), -tree.node_depth(node), node)
        best = candidate if best is None or candidate < best else best
    return best[2]


def _train_with_replay(model, X_new, index, nodes, progress) -> list[str]:
    """Re-train the VAEs of tree `nodes` on the new class's `X_new` (class `index`, or None) plus replay."""
    if not nodes:
        return []
    needed = sorted({c for n in nodes for c in model.tree_.classes(n)} - {index})
    blocks = [replay_class(model, c) for c in needed]
    X = np.concatenate(([X_new] if index is not None else []) + blocks)
    y = np.concatenate(([np.full(len(X_new), index)] if index is not None else [])
                       + [np.full(len(b), c) for b, c in zip(blocks, needed)])
    model.train_nodes(X, y, nodes, progress)
    return [node_key(n) for n in nodes]


class TreeClassChanges:
    """`add_class` / `remove_class` of a tree model: placement, replay of the old classes, re-balancing.

    Mixed into `TreeRegenClassifier`, whose `tree_`, `_train_vaes`, `winner_key` and `node_class_sets` it uses.
    """

    def add_class(self, X, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Learn a new class: a new leaf beside the most alike node, re-training only the path above it.

        The new leaf VAE is trained on `X`; the tree's similarity measure (on replayed samples of the old
        classes) picks the node to stand beside, within the depth promise ``ceil(log2 M) + 1`` (or the
        current depth when a non-balanced builder already exceeded it); then the new internal node and
        every non-root ancestor, whose class sets grew, are re-trained on `X` plus replay. At most
        depth + 1 VAEs are trained.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
            Images of the new class only.
        label : int or str
            New class, of the same kind as `classes_`; it takes its sorted place.
        progress : callable, optional

        Returns
        -------
        ClassUpdate
            ``placement`` names the node beside which the class went, its classes, and the new depth.
        """
        started = time.perf_counter()
        X, index = check_new_class(self, X, label)
        tree = self.tree_
        new_leaf = tree.next_leaf_id()
        with transaction(self):
            self._train_vaes(X, np.full(len(X), index), {node_key(new_leaf): [index]}, progress)
            old = list(range(tree.n_classes))
            samples = [replay_class(self, c) for c in old] + [X]
            keys = [self.winner_key(np.array([c]))[0] for c in old] + [node_key(new_leaf)]
            distance = class_distance_matrix(self, samples, keys)[-1, :-1]
            beside = choose_sibling(tree, distance, max(depth_limit(tree.n_classes + 1), tree.depth))
            beside_classes = [self.classes_[c].item() for c in tree.classes(beside)]
            changed = self.tree_.insert_class(index, beside)
            retrain = sorted(changed & set(self.tree_.non_root_nodes()) - {new_leaf})
            trained = [node_key(new_leaf), *_train_with_replay(self, X, index, retrain, progress)]
            self.classes_ = classes_with(self.classes_, label, index)
            _finish_tree(self)
        placement = {"beside_node": int(beside), "beside_classes": beside_classes, "depth": int(self.depth_)}
        return ClassUpdate("add", label, tuple(trained), (), time.perf_counter() - started, placement)


    def remove_class(self, label, *, progress: Optional[ProgressCallback] = None) -> ClassUpdate:
        """Forget a class: drop its leaf (and the parent it leaves with one child), re-train the ancestors.

        The ancestors whose class sets shrank are re-trained on replay of their remaining classes; if the
        tree now breaks the depth promise of M - 1 classes (and kept the promise before), the smallest
        subtree that can hold it is rebuilt balanced and its new internal VAEs trained on replay.

        Returns
        -------
        ClassUpdate
            ``dropped`` lists the deleted VAE keys, ``trained`` the re-trained ones.
        """
        started = time.perf_counter()
        index = check_known_class(self, label)
        tree = self.tree_
        kept_promise = tree.depth <= depth_limit(tree.n_classes)
        with transaction(self):
            before = set(tree.non_root_nodes())
            changed = tree.remove_class(index)
            dropped = [node_key(n) for n in sorted(before - set(tree.non_root_nodes()))]
            _drop(self, dropped)
            self.classes_ = np.delete(self.classes_, index)
            trained = _train_with_replay(self, None, None, sorted(changed - {tree.root}), progress)
            limit = depth_limit(tree.n_classes) if kept_promise else max(depth_limit(tree.n_classes), tree.depth)
            rebuilt, removed = _rebalance(self, limit, progress)
            dropped += removed
            trained += rebuilt
            _finish_tree(self)
        return ClassUpdate("remove", label, tuple(trained), tuple(dropped), time.perf_counter() - started,
                           {"depth": int(self.depth_)})


def _drop(model, keys) -> None:
    for key in keys:
        for table in (model.vaes_, model.vae_classes_, model.training_info_):
            table.pop(key, None)
        model.novelty_reference_.drop(key)


def _finish_tree(model) -> None:
    """Class sets of every node VAE follow the (re-indexed) tree; the depth is refreshed."""
    model.vae_classes_ = model.node_class_sets(model.tree_.non_root_nodes())
    model.depth_ = model.tree_.depth


def _rebalance(model, limit: int, progress) -> tuple[list[str], list[str]]:
    """Rebuild, balanced, the deepest subtree that can hold the deepest leaf within `limit`.

    Returns the keys of the trained and of the dropped VAEs. Leaf VAEs are kept (their class is
    unchanged); only the new internal nodes of the rebuilt subtree are trained.
    """
    trained, dropped = [], []
    while model.tree_.depth > limit:
        tree = model.tree_
        deepest = max(tree.leaves, key=tree.node_depth)
        top = next(n for n in reversed(tree.ancestors(deepest))
                   if tree.node_depth(n) + math.ceil(math.log2(len(tree.classes(n)))) <= limit)
        classes = list(tree.classes(top))
        keys = [model.winner_key(np.array([c]))[0] for c in classes]
        sub = build_tree(class_distance_matrix(model, [replay_class(model, c) for c in classes], keys), "balanced")
        old_internal, new_internal = tree.replace_subtree(top, sub, classes)
        _drop(model, [node_key(n) for n in old_internal])
        dropped += [node_key(n) for n in old_internal]
        trained += _train_with_replay(model, None, None, new_internal, progress)
    return trained, dropped
