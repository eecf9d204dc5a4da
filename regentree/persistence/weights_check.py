"""Checks of a VAE weights file before and after it is read: header shapes and dtypes, then finite values.

A safetensors file starts with an 8-byte little-endian header length and a JSON header naming every
tensor's dtype, shape and byte range. Reading only that header and comparing it with the shapes the VAE
config implies (computed on torch's "meta" device, which allocates nothing) means a tampered config or
file fails in one line before any weight is allocated.
"""

from __future__ import annotations

import struct
from math import prod
from pathlib import Path

import torch

from regentree.errors import ModelFolderError
from regentree.strict_json import loads_strict
from regentree.vae.model import VAE, VAEConfig

FLOAT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
"""safetensors dtypes a VAE weight may have, with their item sizes; integer or boolean weights are refused."""
MAX_HEADER_BYTES = 100 * 1024**2  # safetensors' own cap on the header


def expected_shapes(config: VAEConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of a VAE of `config`, without allocating its weights."""
    with torch.device("meta"):
        return {name: tuple(tensor.shape) for name, tensor in VAE(config).state_dict().items()}


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of every tensor in safetensors file `path`, from its header alone."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ModelFolderError(f"{path}: unreadable safetensors file (only {size} bytes)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ModelFolderError(f"{path}: unreadable safetensors file (header claims {length} bytes, the file holds {size})")
        raw = handle.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFolderError(f"{path}: unreadable safetensors file (header is not UTF-8)") from None
    header = loads_strict(text, f"{path} (safetensors header)", ModelFolderError)
    if not isinstance(header, dict):
        raise ModelFolderError(f"{path}: unreadable safetensors file (header is not an object)")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _tensor_entry(path, name, entry, size - 8 - length)
    return tensors


def _tensor_entry(path: Path, name: str, entry, data_bytes: int) -> tuple[str, tuple[int, ...]]:
    """(dtype, shape) of one header entry, checked to be a float tensor whose byte range fits the file."""
    try:
        dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        ok = all(isinstance(v, int) and v >= 0 for v in (*shape, start, end))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelFolderError(f"{path}: unreadable safetensors file (header entry {name!r} is malformed)")
    if dtype not in FLOAT_DTYPES:
        raise ModelFolderError(f"{path}: tensor {name!r} has dtype {dtype}; VAE weights must be floating point")
    if end - start != prod(shape) * FLOAT_DTYPES[dtype] or end > data_bytes:
        raise ModelFolderError(f"{path}: tensor {name!r} of shape {list(shape)} does not fit its byte range")
    return dtype, shape


def check_header_against_config(path: Path, config: VAEConfig) -> None:
    """Raise `ModelFolderError` unless the file's tensors are exactly those a VAE of `config` has."""
    expected = expected_shapes(config)
    found = {name: shape for name, (_, shape) in read_header(path).items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:1]
        raise ModelFolderError(f"{path}: tensors do not match the VAE config (first difference: {diff})")


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Raise `ModelFolderError` if any weight is NaN or infinite (such a VAE can never classify)."""
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise ModelFolderError(f"{path}: tensor {name!r} holds NaN or infinite weights")
