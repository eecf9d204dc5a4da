"""The `Dataset` container and what every loader does with it: label encoding, stratified splits, subsampling.

Kept apart from the file loaders so that they (IDX, npz, image folders) can all build on it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from regentree.data.validation import _check_image_shape, _describe, _name_key, _one_line
from regentree.errors import InvalidInputError

SPLITS = ("train", "test", "all")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled grey images, flattened.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        Pixels in [0, 1], rows are images flattened row-major; ``n_features == prod(image_shape)``.
    y : ndarray of shape (n_samples,), int64
        Class indices into `class_names`.
    class_names : tuple of str, length n_classes
        Name of each class index.
    image_shape : tuple of (int, int)
        (height, width) of one image.
    source : str
        Where the data came from ("digits" or a path).
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, int]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "image_shape", _check_image_shape(self.image_shape))
        where = f"Dataset from {self.source!r}"
        X, y = self.X, self.y
        if not isinstance(X, np.ndarray) or X.dtype != np.float32 or X.ndim != 2:
            raise InvalidInputError(f"{where}: X must be a float32 array (n_samples, n_features), got {_describe(X)}")
        if X.shape[1] != prod(self.image_shape):
            raise InvalidInputError(
                f"{where}: X has {X.shape[1]} features, image_shape {self.image_shape} needs {prod(self.image_shape)}"
            )
        if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (X.shape[0],):
            raise InvalidInputError(f"{where}: y must be an int64 array of shape ({X.shape[0]},), got {_describe(y)}")
        if not self.class_names or len(set(self.class_names)) != len(self.class_names):
            raise InvalidInputError(f"{where}: class_names must be non-empty and unique, got {self.class_names}")
        if y.size and (y.min() < 0 or y.max() >= len(self.class_names)):
            raise InvalidInputError(
                f"{where}: y holds indices in [{y.min()}, {y.max()}], outside 0..{len(self.class_names) - 1}"
            )

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of class names (classes with no sample in this subset included)."""
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        """The class name of every sample (what estimators are fitted on)."""
        return np.asarray(self.class_names)[self.y]

    def subset(self, mask_or_indices: Union[np.ndarray, Sequence[int], Sequence[bool]]) -> "Dataset":
        """Rows picked by a boolean mask of shape (n_samples,) or an integer index array; classes unchanged."""
        index = np.asarray(mask_or_indices)
        if index.dtype == bool:
            if index.shape != (len(self),):
                raise InvalidInputError(f"subset: mask has shape {index.shape}, dataset has {len(self)} samples")
        elif index.size == 0:
            index = index.astype(np.intp).reshape(0)
        elif index.dtype.kind not in "iu" or index.ndim != 1:
            raise InvalidInputError(f"subset: expected a boolean mask or 1-D integer indices, got {_describe(index)}")
        elif index.min() < -len(self) or index.max() >= len(self):
            raise InvalidInputError(
                f"subset: indices [{index.min()}, {index.max()}] out of range for {len(self)} samples"
            )
        return Dataset(self.X[index], self.y[index], self.class_names, self.image_shape, self.source)

    def select_classes(self, names: Iterable[str]) -> "Dataset":
        """Keep only the samples of `names`; y is re-indexed, class order follows this dataset's order."""
        wanted = {str(n) for n in ([names] if isinstance(names, str) else names)}
        unknown = sorted(wanted - set(self.class_names), key=_name_key)
        if unknown or not wanted:
            raise InvalidInputError(
                f"select_classes: unknown or no class names {unknown} for dataset from {self.source!r}; "
                f"known: {list(self.class_names)}"
            )
        kept = [i for i, c in enumerate(self.class_names) if c in wanted]
        remap = np.full(self.n_classes, -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept))
        mask = remap[self.y] >= 0
        names_kept = tuple(self.class_names[i] for i in kept)
        return Dataset(self.X[mask], remap[self.y[mask]], names_kept, self.image_shape, self.source)


def stratified_subsample(ds: Dataset, per_class: int, seed: int = 0) -> Dataset:
    """Exactly `per_class` random samples of every class (balanced limited-label sets), in original order."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise InvalidInputError(f"stratified_subsample: per_class must be a positive integer, got {per_class!r}")
    counts = np.bincount(ds.y, minlength=ds.n_classes)
    short = np.flatnonzero(counts < per_class)
    if short.size:
        c = int(short[0])
        raise InvalidInputError(
            f"stratified_subsample: class {ds.class_names[c]!r} of dataset from {ds.source!r} has {counts[c]} "
            f"samples, fewer than per_class={per_class}"
        )
    return capped_subsample(ds, per_class, seed)


def capped_subsample(ds: Dataset, at_most: int, seed: int = 0) -> Dataset:
    """At most `at_most` random samples of every class (a smaller class is taken whole), in original order."""
    if isinstance(at_most, bool) or not isinstance(at_most, (int, np.integer)) or at_most < 1:
        raise InvalidInputError(f"the per-class limit must be a positive integer, got {at_most!r}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(ds.n_classes):
        members = np.flatnonzero(ds.y == c)
        chosen.append(members if len(members) < at_most else rng.choice(members, size=at_most, replace=False))
    return ds.subset(np.sort(np.concatenate(chosen)))


def train_test_split_dataset(ds: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split of `ds` into (train, test); both keep all class names."""
    _check_fraction(test_fraction)
    try:
        from sklearn.model_selection import train_test_split  # deferred: scikit-learn is a slow import
        train, test = train_test_split(
            np.arange(len(ds)), test_size=test_fraction, random_state=seed, stratify=ds.y
        )
    except ValueError as exc:
        raise InvalidInputError(
            f"cannot split dataset from {ds.source!r} stratified with test_fraction={test_fraction} "
            f"({_one_line(exc)})"
        ) from exc
    return ds.subset(train), ds.subset(test)


def _pick_split(ds: Dataset, split: str, seed: int, test_fraction: float) -> Dataset:
    if split == "all":
        return ds
    train, test = train_test_split_dataset(ds, test_fraction, seed)
    return train if split == "train" else test


def _classes_from_int_labels(labels: np.ndarray, names: Optional[dict[int, str]], where: str):
    """Sorted unique integer labels and the class name of each."""
    uniq = np.unique(labels)
    if names is None:
        class_names = tuple(str(int(u)) for u in uniq)
    else:
        missing = [int(u) for u in uniq if int(u) not in names]
        if missing:
            raise InvalidInputError(f"{where}: labels {missing[:5]} have no class name")
        class_names = tuple(str(names[int(u)]) for u in uniq)
        if len(set(class_names)) != len(class_names):
            raise InvalidInputError(f"{where}: class names are not unique ({list(class_names)})")
    return uniq, class_names


def _encode_labels(y: np.ndarray, names: Optional[list[str]], where: str):
    """Class indices (int64) and class names for integer or string labels."""
    if y.dtype.kind == "f":
        if not np.array_equal(y, np.round(y)):
            raise InvalidInputError(f"{where} holds non-integer float labels")
        y = y.astype(np.int64)
    if y.dtype.kind in "biu":
        uniq, class_names = _classes_from_int_labels(y, None if names is None else dict(enumerate(names)), where)
        return np.searchsorted(uniq, y).astype(np.int64), class_names
    uniq, inverse = np.unique(y.astype(str), return_inverse=True)
    if names is None:
        ordered = sorted(uniq.tolist(), key=_name_key)
    else:
        unknown = sorted(set(uniq.tolist()) - set(names))
        if unknown:
            raise InvalidInputError(f"{where} holds labels {unknown[:5]} missing from class_names")
        present = set(uniq.tolist())
        ordered = [n for n in names if n in present]
    position = {n: i for i, n in enumerate(ordered)}
    perm = np.array([position[u] for u in uniq.tolist()], dtype=np.int64)
    return perm[inverse.reshape(-1)], tuple(ordered)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; use one of {list(SPLITS)}")


def _check_fraction(test_fraction: float) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise InvalidInputError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
