"""Labelled image sets by source: `load_dataset` dispatches to digits, a ``.npz`` file, an IDX folder or image folders.

Every loader returns a `Dataset` of float32 images in [0, 1] and the requested train / test / all split.
"""

from __future__ import annotations

import zipfile
from math import isqrt
from pathlib import Path

import numpy as np
from PIL import Image

from regentree.data.bounded import check_npz_file, open_image_bounded
from regentree.data.dataset import Dataset, _check_fraction, _check_split, _encode_labels, _pick_split
from regentree.data.idx import _find_idx_files, _load_idx_dir
from regentree.data.validation import PathLike, _name_key, _one_line, validate_images, validate_labels
from regentree.errors import InvalidInputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_digits_dataset(split: str = "train", seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, pixels 0..16 scaled to [0, 1]), classes "0".."9".

    `split` is "train", "test" (a stratified split by `seed` and `test_fraction`) or "all".
    """
    _check_split(split)
    _check_fraction(test_fraction)
    from sklearn.datasets import load_digits  # deferred: scikit-learn is a slow import
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


def held_out_split(source: PathLike) -> str:
    """The split to score when none is asked for: "test" of a source with train and test parts (the embedded
    digits, an IDX folder), else "all": a single-split file or folder is, as a whole, the held-out data."""
    if isinstance(source, str) and source == "digits":
        return "test"
    path = Path(source)
    return "test" if path.is_dir() and _find_idx_files(path) else "all"


def _load_npz(path: Path) -> Dataset:
    check_npz_file(path)
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


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I")
"""PIL modes of 16-bit grey images: scaled by 1/65535 (converting them to "L" would clip them to 0/255)."""


def _read_grey_image(path: Path) -> np.ndarray:
    """One grey image: uint8 for 8-bit files, float in [0, 1] for 16-bit ones; sized before it is decoded."""
    try:
        with open_image_bounded(path) as image:
            if image.mode in SIXTEEN_BIT_MODES:
                return _scaled_sixteen_bit(path, np.asarray(image))
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, Image.DecompressionBombError) as exc:
        raise InvalidInputError(f"image {path} cannot be read ({_one_line(exc)})") from exc


def _scaled_sixteen_bit(path: Path, pixels: np.ndarray) -> np.ndarray:
    """16-bit grey pixels as float32 in [0, 1] (value / 65535)."""
    if pixels.size and (pixels.min() < 0 or pixels.max() > 65535):
        raise InvalidInputError(f"image {path} has pixel values outside 0..65535")
    return (pixels.astype(np.float64) / 65535.0).astype(np.float32)
