"""Datasets and input checks: IDX / npz / image folders / embedded digits -> float32 images in [0, 1].

Every image array that enters regentree passes through `validate_images`, which returns a C-contiguous
float32 array of shape (n_samples, n_features) with values in [0, 1]. Loaders return a frozen `Dataset`
whose labels are int64 indices into `class_names`. This module never imports torch.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from dataclasses import dataclass
from math import isqrt, prod
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
from scipy import sparse
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from regentree.errors import InvalidInputError

PathLike = Union[str, Path]

SPLITS = ("train", "test", "all")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_FLOAT_TOLERANCE = 1e-6
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MNIST_NAME = re.compile(r"^(?P<split>train|t10k|test)-(?P<kind>images|labels)[-.]idx[13]-ubyte(?:\.gz)?$")
_EMNIST_NAME = re.compile(
    r"^emnist-(?P<set>[a-z0-9]+)-(?P<split>train|test)-(?P<kind>images|labels)-idx[13]-ubyte(?:\.gz)?$"
)
_IDX_PROBE_NAME = re.compile(r"idx\d", re.IGNORECASE)


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


def validate_images(X, *, name: str = "X", image_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Check images and convert them to float32 in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
        bool (0/1), integers in 0..255 (divided by 255) or finite floats in [0, 1].
    name : str
        What `X` is called in error messages.
    image_shape : tuple of (int, int), optional
        Expected (height, width); checked against the feature count (and the 3-D shape).

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32, C-contiguous
        A new array; floats within 1e-6 outside [0, 1] are clipped.

    Raises
    ------
    InvalidInputError
        Non-numeric dtype, wrong ndim, no samples or features, NaN/inf, values out of range,
        feature count not matching `image_shape`.
    """
    if sparse.issparse(X):
        raise InvalidInputError(f"{name} is a sparse matrix; sparse input is not supported, pass a dense array")
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{name} is not a rectangular array ({_one_line(exc)})") from exc
    if arr.dtype.kind == "c":
        raise InvalidInputError(f"{name}: Complex data not supported")
    if arr.dtype.kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"{name} has dtype object with non-numeric entries ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must hold numbers (bool, integer or float), got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_features) or 3-D (n_samples, height, width), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} has no samples (shape {arr.shape})")
    if prod(arr.shape[1:]) == 0:
        raise InvalidInputError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if image_shape is not None:
        shape = _check_image_shape(image_shape)
        if arr.ndim == 3 and arr.shape[1:] != shape:
            raise InvalidInputError(f"{name} holds images of shape {arr.shape[1:]}, expected {shape}")
        if prod(arr.shape[1:]) != prod(shape):
            raise InvalidInputError(
                f"{name} has {prod(arr.shape[1:])} features per image, image_shape {shape} needs {prod(shape)}"
            )
    arr = arr.reshape(arr.shape[0], prod(arr.shape[1:]))
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.float32, order="C")
    if kind in "iu":
        if arr.dtype != np.uint8:
            low, high = arr.min(), arr.max()
            if low < 0 or high > 255:
                raise InvalidInputError(
                    f"{name} has integer pixel values in [{low}, {high}], outside the allowed range [0, 255]"
                )
        out = arr.astype(np.float32, order="C")
        out /= np.float32(255.0)
        return out
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite.ravel())
        row, col = np.unravel_index(bad[0], arr.shape)
        raise InvalidInputError(
            f"{name} holds {bad.size} NaN/inf value(s); the first is at sample {row}, feature {col}"
        )
    low, high = float(arr.min()), float(arr.max())
    if low < -_FLOAT_TOLERANCE or high > 1.0 + _FLOAT_TOLERANCE:
        raise InvalidInputError(
            f"{name} has float pixel values in [{low:.6g}, {high:.6g}], outside the allowed range [0, 1] "
            "(integer images may use 0..255)"
        )
    out = arr.astype(np.float32, order="C")
    np.clip(out, 0.0, 1.0, out=out)
    return out


def validate_labels(y, n_samples: int, *, name: str = "y") -> np.ndarray:
    """Check labels: 1-D, one per sample, none missing.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Integer or string labels.
    n_samples : int
        Number of images the labels belong to.
    name : str
        What `y` is called in error messages.

    Returns
    -------
    ndarray of shape (n_samples,)
        `np.asarray(y)`, dtype unchanged.
    """
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{name} is not a 1-D array of labels ({_one_line(exc)})") from exc
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise InvalidInputError(f"{name} has {arr.shape[0]} labels but there are {n_samples} samples")
    if arr.dtype.kind not in "biufUSO":
        raise InvalidInputError(f"{name} must hold integer or string labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        missing = ~np.isfinite(arr)
    elif arr.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in arr], dtype=bool)
    else:
        missing = np.zeros(arr.shape, dtype=bool)
    if missing.any():
        raise InvalidInputError(
            f"{name} holds {int(missing.sum())} missing (NaN/inf/None) label(s); the first at index "
            f"{int(np.argmax(missing))}"
        )
    return arr


def load_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed, detected by its magic bytes).

    Parameters
    ----------
    path : str or Path
        File in the IDX format: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short,
        0x0C int, 0x0D float, 0x0E double), the number of dimensions, big-endian uint32 sizes, data.

    Returns
    -------
    ndarray of shape given by the header, native byte order
    """
    path = Path(path)
    raw = _read_bytes(path, "IDX file")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidInputError(f"IDX file {path} is a corrupt or truncated gzip file ({_one_line(exc)})") from exc
    if len(raw) < 4:
        raise InvalidInputError(f"IDX file {path} is too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise InvalidInputError(f"IDX file {path} does not start with an IDX magic number (bytes {raw[:4].hex()})")
    dtype = _IDX_DTYPES.get(raw[2])
    if dtype is None:
        raise InvalidInputError(f"IDX file {path} has unknown data type code 0x{raw[2]:02X}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InvalidInputError(f"IDX file {path} has a bad or truncated header ({ndim} dimensions, {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = prod(dims)
    expected, found = count * dtype.itemsize, len(raw) - header
    if found < expected:
        raise InvalidInputError(
            f"IDX file {path} is truncated: shape {dims} needs {expected} data bytes, found {found}"
        )
    if found > expected:
        raise InvalidInputError(f"IDX file {path} has {found - expected} trailing bytes after its {dims} data")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_digits_dataset(split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, pixels 0..16 scaled to [0, 1]), classes "0".."9".

    `split` is "train", "test" (a stratified split by `seed` and `test_fraction`) or "all".
    """
    _check_split(split)
    _check_fraction(test_fraction)
    bunch = load_digits()
    X = validate_images(bunch.data / 16.0, name="digits images")
    ds = Dataset(X, bunch.target.astype(np.int64), tuple(str(i) for i in range(10)), (8, 8), "digits")
    return _pick_split(ds, split, seed, test_fraction)


def load_dataset(source: PathLike, split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Load a labelled image set.

    Parameters
    ----------
    source : str or Path
        "digits"; a directory of IDX files (MNIST or EMNIST names, optional ``classes.txt``); a ``.npz``
        file with ``x`` (or ``X``), ``y`` and optional ``class_names`` / ``image_shape``; or a directory
        of class sub-folders of PNG/JPEG images.
    split : {"train", "test", "all"}
        A source with its own train/test files uses them; any other is split here, stratified.
    seed : int
        Seed of the stratified split (single-split sources only).
    test_fraction : float
        Share of the test part of the stratified split, in (0, 1).

    Returns
    -------
    Dataset
        Labels are indices into class names sorted in numeric order where numeric ("2" before "10");
        names from ``classes.txt``, an EMNIST mapping or ``class_names`` follow their label order.
    """
    _check_split(split)
    _check_fraction(test_fraction)
    if isinstance(source, str) and source == "digits":
        return load_digits_dataset(split, seed, test_fraction)
    path = Path(source)
    if not path.exists():
        raise InvalidInputError(f"dataset source {str(source)!r} is neither 'digits' nor an existing file or directory")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise InvalidInputError(f"dataset file {path} is not a .npz file (a dataset directory is also accepted)")
        return _pick_split(_load_npz(path), split, seed, test_fraction)
    idx_files = _find_idx_files(path)
    if idx_files:
        return _load_idx_dir(path, idx_files, split, seed, test_fraction)
    class_dirs = [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if class_dirs:
        return _pick_split(_load_image_folder(path, class_dirs), split, seed, test_fraction)
    raise InvalidInputError(
        f"dataset directory {path} holds no recognisable files (IDX files or class sub-folders of PNG/JPEG images)"
    )


def load_probes(
    paths: Union[PathLike, Iterable[PathLike]], image_shape: tuple[int, int]
) -> tuple[np.ndarray, list[str]]:
    """Read images to classify.

    Parameters
    ----------
    paths : path or iterable of paths
        PNG/JPEG files (one grey image each), ``.npy`` / ``.npz`` arrays (``x`` or ``X`` key) of one
        image (height, width) or many (n, height, width) / (n, height * width), or IDX image files
        (EMNIST-named ones are transposed upright).
    image_shape : tuple of (int, int)
        (height, width) every probe must have.

    Returns
    -------
    X : ndarray of shape (n_probes, height * width), float32 in [0, 1]
    names : list of str, length n_probes
        ``file.png`` for a single image, ``file.npy[3]`` for row 3 of a stack.
    """
    shape = _check_image_shape(image_shape)
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise InvalidInputError("no probe files given")
    blocks, names = [], []
    for path in paths:
        if not path.is_file():
            raise InvalidInputError(f"probe file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            arr = _read_grey_image(path)
        elif suffix == ".npy":
            arr = _read_npy(path)
        elif suffix == ".npz":
            arr = _read_npz_images(path)
        elif _IDX_PROBE_NAME.search(path.name) or suffix == ".idx":
            arr = load_idx(path)
            if path.name.startswith("emnist-") and arr.ndim == 3:
                arr = arr.transpose(0, 2, 1)
        else:
            raise InvalidInputError(
                f"probe file {path} has unsupported type {suffix or '(none)'!r}; use PNG/JPEG, .npy, .npz or IDX"
            )
        stack, single = _as_probe_stack(path, arr, shape)
        blocks.append(validate_images(stack, name=f"probe file {path}", image_shape=shape))
        names.extend([path.name] if single else [f"{path.name}[{i}]" for i in range(len(stack))])
    return np.concatenate(blocks, axis=0), names


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
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(ds.y == c), size=per_class, replace=False) for c in range(ds.n_classes)]
    return ds.subset(np.sort(np.concatenate(chosen)))


def train_test_split_dataset(ds: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Deterministic stratified split of `ds` into (train, test); both keep all class names."""
    _check_fraction(test_fraction)
    try:
        train, test = train_test_split(
            np.arange(len(ds)), test_size=test_fraction, random_state=seed, stratify=ds.y
        )
    except ValueError as exc:
        raise InvalidInputError(
            f"cannot split dataset from {ds.source!r} stratified with test_fraction={test_fraction} "
            f"({_one_line(exc)})"
        ) from exc
    return ds.subset(train), ds.subset(test)


# ---------------------------------------------------------------- helpers


def _pick_split(ds: Dataset, split: str, seed: int, test_fraction: float) -> Dataset:
    if split == "all":
        return ds
    train, test = train_test_split_dataset(ds, test_fraction, seed)
    return train if split == "train" else test


def _find_idx_files(directory: Path) -> dict:
    """{(split, kind): path} of the IDX files in `directory`, plus key "emnist" -> set name or None."""
    found: dict = {}
    kinds = {"mnist": set(), "emnist": set()}
    for f in sorted(directory.iterdir()):
        match = _MNIST_NAME.match(f.name) or _EMNIST_NAME.match(f.name)
        if match is None or not f.is_file():
            continue
        split = "train" if match["split"] == "train" else "test"
        found.setdefault((split, match["kind"]), f)  # raw name sorts before .gz: prefer it
        if "set" in match.groupdict():
            kinds["emnist"].add(match["set"])
        else:
            kinds["mnist"].add("mnist")
    if not found:
        return {}
    if len(kinds["emnist"]) + len(kinds["mnist"]) > 1:
        raise InvalidInputError(
            f"IDX directory {directory} mixes several data sets ({sorted(kinds['emnist'] | kinds['mnist'])}); "
            "put each in its own directory"
        )
    found["emnist"] = next(iter(kinds["emnist"]), None)
    return found


def _load_idx_dir(path: Path, files: dict, split: str, seed: int, test_fraction: float) -> Dataset:
    emnist = files.pop("emnist")
    splits = [s for s in ("train", "test") if any(key[0] == s for key in files)]
    for s in splits:
        for kind, other in (("images", "labels"), ("labels", "images")):
            if (s, kind) not in files:
                raise InvalidInputError(f"IDX directory {path}: {files[(s, other)].name} has no matching {kind} file")
    labels = {s: _read_idx_labels(files[(s, "labels")]) for s in splits}
    names = _read_class_names_txt(path / "classes.txt")
    if names is None and emnist is not None:
        names = _read_emnist_mapping(path / f"emnist-{emnist}-mapping.txt")
    where = f"IDX directory {path}"
    uniq, class_names = _classes_from_int_labels(np.concatenate(list(labels.values())), names, where)
    wanted = splits if split == "all" or len(splits) == 1 else [split]
    images = []
    for s in wanted:
        imgs = load_idx(files[(s, "images")])
        if imgs.ndim != 3 or len(imgs) != len(labels[s]):
            raise InvalidInputError(
                f"{where}: {files[(s, 'images')].name} holds shape {imgs.shape} but "
                f"{files[(s, 'labels')].name} holds {len(labels[s])} labels"
            )
        images.append(imgs.transpose(0, 2, 1) if emnist is not None else imgs)
    if len({im.shape[1:] for im in images}) > 1:
        raise InvalidInputError(f"{where}: train and test images differ in size ({[im.shape[1:] for im in images]})")
    X = validate_images(np.concatenate(images) if len(images) > 1 else images[0], name=f"images in {path}")
    y = np.searchsorted(uniq, np.concatenate([labels[s] for s in wanted])).astype(np.int64)
    ds = Dataset(X, y, class_names, images[0].shape[1:], str(path))
    return _pick_split(ds, split, seed, test_fraction) if len(splits) == 1 else ds


def _read_idx_labels(path: Path) -> np.ndarray:
    labels = load_idx(path)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InvalidInputError(f"IDX label file {path} must hold 1-D integers, got {_describe(labels)}")
    return labels.astype(np.int64)


def _read_class_names_txt(path: Path) -> Optional[dict[int, str]]:
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names or "" in names or len(set(names)) != len(names):
        raise InvalidInputError(f"class names file {path} must hold one unique, non-empty name per line")
    return dict(enumerate(names))


def _read_emnist_mapping(path: Path) -> Optional[dict[int, str]]:
    if not path.is_file():
        return None
    mapping = {}
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            label, codepoint = (int(v) for v in line.split()[:2])
            mapping[label] = chr(codepoint)
        except (ValueError, OverflowError) as exc:
            raise InvalidInputError(f"EMNIST mapping {path} line {number} is not 'label codepoint': {line!r}") from exc
    return mapping


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


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(data.files)
            key = "x" if "x" in keys else "X"
            if key not in keys or "y" not in keys:
                x = None
            else:
                x, y = data[key], data["y"]
                names = [str(n) for n in data["class_names"]] if "class_names" in keys else None
                shape = tuple(int(s) for s in data["image_shape"]) if "image_shape" in keys else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"npz file {path} cannot be read ({_one_line(exc)})") from exc
    if x is None:
        raise InvalidInputError(f"npz file {path} must hold arrays 'x' (or 'X') and 'y'; found {keys}")
    if shape is None:
        if x.ndim == 3:
            shape = x.shape[1:]
        elif x.ndim == 2 and isqrt(x.shape[1]) ** 2 == x.shape[1]:
            shape = (isqrt(x.shape[1]),) * 2
        else:
            raise InvalidInputError(f"npz file {path}: cannot infer the image shape of {x.shape}; add 'image_shape'")
    X = validate_images(x, name=f"npz file {path} array {key!r}", image_shape=shape)
    labels = validate_labels(y, len(X), name=f"npz file {path} array 'y'")
    y_idx, class_names = _encode_labels(labels, names, f"npz file {path} array 'y'")
    return Dataset(X, y_idx, class_names, shape, str(path))


def _load_image_folder(root: Path, class_dirs: list[Path]) -> Dataset:
    class_names = sorted((d.name for d in class_dirs), key=_name_key)
    images, labels, first = [], [], None
    for index, name in enumerate(class_names):
        folder = root / name
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InvalidInputError(f"class folder {folder} holds no PNG/JPEG images")
        for f in files:
            img = _read_grey_image(f)
            if first is None:
                first = (f, img.shape)
            elif img.shape != first[1]:
                raise InvalidInputError(
                    f"image {f} has shape {img.shape}, but {first[0]} has shape {first[1]}; all must share one size"
                )
            images.append(img)
            labels.append(index)
    X = validate_images(np.stack(images), name=f"images under {root}")
    return Dataset(X, np.asarray(labels, dtype=np.int64), tuple(class_names), first[1], str(root))


def _read_grey_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except OSError as exc:
        raise InvalidInputError(f"image {path} cannot be read ({_one_line(exc)})") from exc


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"npy file {path} cannot be read ({_one_line(exc)})") from exc


def _read_npz_images(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(data.files)
            arr = data["x"] if "x" in keys else data["X"] if "X" in keys else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"npz file {path} cannot be read ({_one_line(exc)})") from exc
    if arr is None:
        raise InvalidInputError(f"npz file {path} has no array 'x' (or 'X'); found {keys}")
    return arr


def _as_probe_stack(path: Path, arr: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(stack of shape (n, ...), whether the file held one image) or an error naming both sizes."""
    n_features = prod(shape)
    if arr.ndim == 1 and arr.size == n_features:
        return arr.reshape(1, n_features), True
    if arr.ndim == 2 and arr.shape == shape:
        return arr.reshape(1, n_features), True
    if (arr.ndim == 2 and arr.shape[1] == n_features) or (arr.ndim == 3 and arr.shape[1:] == shape):
        return arr, False
    raise InvalidInputError(
        f"probe file {path} holds shape {arr.shape}, but the model expects images of shape {shape} "
        f"({n_features} pixels)"
    )


def _check_image_shape(image_shape) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in image_shape)
        ok = height > 0 and width > 0 and all(float(s) == int(s) for s in image_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(f"image_shape must be (height, width) of positive integers, got {image_shape!r}")
    return height, width


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; use one of {list(SPLITS)}")


def _check_fraction(test_fraction: float) -> None:
    if not isinstance(test_fraction, (int, float)) or not 0.0 < float(test_fraction) < 1.0:
        raise InvalidInputError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InvalidInputError(f"{what} {path} does not exist or is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{what} {path} cannot be read ({_one_line(exc)})") from exc


def _name_key(name: str):
    """Sort key: numeric names first in numeric order ("2" < "10"), then the others alphabetically."""
    try:
        return (0, int(name), "")
    except ValueError:
        return (1, 0, name)


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
