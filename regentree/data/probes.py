"""Probe files, the unlabelled images to classify: `load_probes` reads PNG/JPEG, ``.npy`` / ``.npz`` or IDX files.

Each file may hold one image or a stack; all are checked against the model's image shape.
"""

from __future__ import annotations

import re
import zipfile
from math import prod
from pathlib import Path
from typing import Iterable, Union

import numpy as np

from regentree.data.bounded import check_npy_file, check_npz_file
from regentree.data.idx import load_idx
from regentree.data.loaders import IMAGE_SUFFIXES, _read_grey_image
from regentree.data.validation import PathLike, _check_image_shape, _one_line, validate_images
from regentree.errors import InvalidInputError

_IDX_PROBE_NAME = re.compile(r"idx\d", re.IGNORECASE)


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


def _read_npy(path: Path) -> np.ndarray:
    check_npy_file(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"npy file {path} cannot be read ({_one_line(exc)})") from exc


def _read_npz_images(path: Path) -> np.ndarray:
    check_npz_file(path)
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
