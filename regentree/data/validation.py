"""Input checks: every image array entering regentree passes `validate_images`, labels `validate_labels`.

`validate_images` returns a C-contiguous float32 array (n_samples, n_features) in [0, 1] (pixels, for a Bernoulli
decoder); `validate_features` the same shape of any finite values (real-valued features, for a Gaussian decoder),
and `in_pixel_range` says which of the two an array is; `class_indices`
maps labels to a model's class indices. The small shared helpers here (image-shape check, class-name sort
key, error-message formatting) are used by the whole
`regentree.data` package, which is why this module imports nothing else from it.
"""

from __future__ import annotations

import warnings
from math import prod
from pathlib import Path
from typing import Optional, Union

import numpy as np
from scipy import sparse

from regentree.errors import InvalidInputError, NonNumericInputError

PathLike = Union[str, Path]
_FLOAT_TOLERANCE = 1e-6


def validate_images(X, *, name: str = "X", image_shape: Optional[tuple[int, int]] = None,
                    clip: bool = False) -> np.ndarray:
    """Check images and convert them to float32 in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, height, width)
        bool (0/1), integers in 0..255 (divided by 255) or finite floats in [0, 1].
    name : str
        What `X` is called in error messages.
    image_shape : tuple of (int, int), optional
        Expected (height, width); checked against the feature count (and the 3-D shape).
    clip : bool, default False
        Clip finite floats outside [0, 1] with a `UserWarning` instead of refusing them: probes of a Bernoulli
        model scaled by a transform fitted on other data (a `MinMaxScaler` in a cross-validation fold) land
        outside [0, 1], and the decoder's cross-entropy needs values in [0, 1]. Training data is never clipped.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32, C-contiguous
        A new array; floats within 1e-6 outside [0, 1] are clipped (all out-of-range floats with `clip`).

    Raises
    ------
    InvalidInputError
        Non-numeric dtype, wrong ndim, no samples or features, NaN/inf, values out of range,
        feature count not matching `image_shape`.
    """
    arr = _numeric_2d(X, name, image_shape)
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
    _check_finite(arr, name)
    low, high = float(arr.min()), float(arr.max())
    if (low < -_FLOAT_TOLERANCE or high > 1.0 + _FLOAT_TOLERANCE) and clip:
        outside = int(np.count_nonzero((arr < 0) | (arr > 1)))
        warnings.warn(f"{name} has {outside} float values in [{low:.6g}, {high:.6g}] outside the Bernoulli decoder's "
                      "[0, 1]; clipped to [0, 1] (fit with likelihood='gaussian' for real-valued features)",
                      UserWarning, stacklevel=4)
    elif low < -_FLOAT_TOLERANCE or high > 1.0 + _FLOAT_TOLERANCE:
        raise InvalidInputError(
            f"{name} has float pixel values in [{low:.6g}, {high:.6g}], outside the allowed range [0, 1] "
            "(integer images may use 0..255)"
        )
    out = arr.astype(np.float32, order="C")
    np.clip(out, 0.0, 1.0, out=out)
    return out


def validate_features(X, *, name: str = "X", image_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Check real-valued features and convert them to float32, values unchanged (no pixel scaling).

    The shape checks and arguments are those of `validate_images`; any finite value is accepted.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32, C-contiguous

    Raises
    ------
    InvalidInputError
        Non-numeric dtype, wrong ndim, no samples or features, NaN/inf (also once cast to float32),
        feature count not matching `image_shape`.
    """
    arr = _numeric_2d(X, name, image_shape)
    _check_finite(arr, name)
    out = arr.astype(np.float32, order="C")
    _check_finite(out, name)  # float64 values beyond float32's range
    return out


def in_pixel_range(X) -> bool:
    """Whether `X` (checked as `validate_images` checks it) holds pixels: bool, integers in 0..255 or finite floats
    in [0, 1]. False for anything `validate_images` would refuse by its values alone (out of range, NaN/inf)."""
    arr = _numeric_2d(X, "X", None)
    if arr.dtype.kind == "b":
        return True
    if not np.isfinite(arr).all():
        return False
    low, high = (0.0, 255.0) if arr.dtype.kind in "iu" else (-_FLOAT_TOLERANCE, 1.0 + _FLOAT_TOLERANCE)
    return bool(arr.min() >= low and arr.max() <= high)


def _numeric_2d(X, name: str, image_shape: Optional[tuple[int, int]]) -> np.ndarray:
    """`X` as a 2-D (n_samples, n_features) array of bool, integer or float numbers, shape checks passed."""
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
            raise NonNumericInputError(f"{name} has dtype object with non-numeric entries ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must hold numbers (bool, integer or float), got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        hint = ". Reshape your data: X.reshape(1, -1) for one sample, X.reshape(-1, 1) for one feature"
        raise InvalidInputError(
            f"{name} must be 2-D (n_samples, n_features) or 3-D (n_samples, height, width), got shape {arr.shape}"
            + (hint if arr.ndim == 1 else "")
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
    return arr.reshape(arr.shape[0], prod(arr.shape[1:]))


def _check_finite(arr: np.ndarray, name: str) -> None:
    """Raise `InvalidInputError` naming the first NaN/inf of float array `arr` (integers are always finite)."""
    if arr.dtype.kind != "f":
        return
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.flatnonzero(~finite.ravel())
        row, col = np.unravel_index(bad[0], arr.shape)
        raise InvalidInputError(
            f"{name} holds {bad.size} NaN/inf value(s); the first is at sample {row}, feature {col}"
        )


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


def class_indices(classes, labels, *, where: str = "y") -> np.ndarray:
    """Index into `classes` of every label, matched by its text (7 finds "7"); the one label -> index lookup.

    Unknown labels raise `InvalidInputError` naming `where` (the data set or argument they came from).
    """
    known = [str(c) for c in classes]
    position = {name: i for i, name in enumerate(known)}
    values, inverse = np.unique(np.asarray(labels).astype(str).ravel(), return_inverse=True)
    unknown = sorted(set(values.tolist()) - set(position))
    if unknown:
        raise InvalidInputError(f"{where}: labels {unknown[:5]} are not classes of the model (it knows {known[:10]})")
    return np.array([position[v] for v in values.tolist()], dtype=np.int64)[inverse.ravel()]


def _check_image_shape(image_shape) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in image_shape)
        ok = height > 0 and width > 0 and all(float(s) == int(s) for s in image_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(f"image_shape must be (height, width) of positive integers, got {image_shape!r}")
    return height, width


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
