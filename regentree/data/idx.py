"""IDX files (MNIST / EMNIST format): `load_idx` parses one file, `_load_idx_dir` turns a folder of them into a Dataset.

A folder may hold MNIST- or EMNIST-named train/test files, plus ``classes.txt`` or an EMNIST mapping for names;
EMNIST images are stored transposed and are turned upright here.
"""

from __future__ import annotations

import re
from math import prod
from pathlib import Path
from typing import Optional

import numpy as np

from regentree.data.bounded import check_array_bytes, gunzip_bounded
from regentree.data.dataset import Dataset, _classes_from_int_labels, _pick_split
from regentree.data.validation import PathLike, _describe, _one_line, validate_images
from regentree.errors import InvalidInputError

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_HEADER_BYTES = 4 + 4 * 255  # magic, type, ndim and up to 255 big-endian uint32 sizes
_MNIST_NAME = re.compile(r"^(?P<split>train|t10k|test)-(?P<kind>images|labels)[-.]idx[13]-ubyte(?:\.gz)?$")
_EMNIST_NAME = re.compile(
    r"^emnist-(?P<set>[a-z0-9]+)-(?P<split>train|test)-(?P<kind>images|labels)-idx[13]-ubyte(?:\.gz)?$"
)


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
    if raw[:2] == b"\x1f\x8b":  # inflate the header alone, then no more than the size it declares (+1 to see excess)
        head = gunzip_bounded(path, raw, "IDX file", _MAX_HEADER_BYTES)
        dims, dtype = _header(path, head)
        raw = gunzip_bounded(path, raw, "IDX file", 4 + 4 * len(dims) + prod(dims) * dtype.itemsize)
    dims, dtype = _header(path, raw)
    header = 4 + 4 * len(dims)
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


def _header(path: Path, raw: bytes) -> tuple[tuple[int, ...], np.dtype]:
    """(dims, dtype) of the IDX header at the start of `raw`, refused when the array it declares is over the cap."""
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
    check_array_bytes(path, "IDX file", dims, dtype.itemsize)
    return dims, dtype


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


def _read_bytes(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise InvalidInputError(f"{what} {path} does not exist or is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{what} {path} cannot be read ({_one_line(exc)})") from exc
