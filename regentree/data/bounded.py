"""Size checks from file headers before decoding, so a small hostile file cannot claim gigabytes of memory.

IDX gzip streams are inflated with a cap, `.npy` and `.npz` arrays are sized from their headers (and a
zip member's declared size) before reading, and images are sized before decoding. The caps come from
`regentree.limits` (REGENTREE_MAX_ARRAY_BYTES, REGENTREE_MAX_IMAGE_PIXELS).
"""

from __future__ import annotations

import gzip
import io
import warnings
import zipfile
import zlib
from math import prod
from pathlib import Path

from numpy.lib import format as npy_format
from PIL import Image

from regentree.data.validation import _one_line
from regentree.errors import InvalidInputError
from regentree.limits import limit

_CHUNK = 1 << 20


DECODED_ITEMSIZE = 4
"""Bytes per value once decoded: every image array becomes float32, so a uint8 file takes four times its size."""


def check_array_bytes(path: Path, what: str, shape: tuple, itemsize: int) -> None:
    """Refuse an array of `shape` whose decoded size exceeds REGENTREE_MAX_ARRAY_BYTES, naming the file."""
    size = prod(int(s) for s in shape) * max(int(itemsize), DECODED_ITEMSIZE)
    cap = limit("max_array_bytes")
    if size > cap:
        raise InvalidInputError(f"{what} {path} declares an array of shape {tuple(shape)} ({size} bytes once "
                                f"decoded), more than the limit of {cap} bytes (raise REGENTREE_MAX_ARRAY_BYTES "
                                "to allow it)")


def gunzip_bounded(path: Path, raw: bytes, what: str, max_bytes: int) -> bytes:
    """The inflated gzip stream `raw`, cut after `max_bytes` + 1 bytes so a bomb never inflates further."""
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            while len(out) <= max_bytes and (block := stream.read(min(_CHUNK, max_bytes + 1 - len(out)))):
                out += block
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"{what} {path} is a corrupt or truncated gzip file ({_one_line(exc)})") from exc
    return bytes(out)


def check_npy_header(path: Path, handle, what: str) -> None:
    """Read the `.npy` header at `handle`'s position and refuse an oversized array (position restored)."""
    start = handle.tell()
    try:
        version = npy_format.read_magic(handle)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read(handle)
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{what} {path} cannot be read ({_one_line(exc)})") from exc
    check_array_bytes(path, what, shape, dtype.itemsize)
    handle.seek(start)


def check_npy_file(path: Path) -> None:
    """Refuse a `.npy` file whose header declares more than the array cap."""
    with open(path, "rb") as handle:
        check_npy_header(path, handle, "npy file")


def check_npz_file(path: Path) -> None:
    """Refuse an `.npz` file any of whose members declares (or inflates to) more than the array cap."""
    cap = limit("max_array_bytes") + 4096
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.file_size > cap:
                    raise InvalidInputError(
                        f"npz file {path} member {member.filename!r} declares {member.file_size} bytes, more than the "
                        f"limit of {cap} (raise REGENTREE_MAX_ARRAY_BYTES to allow it)")
                with archive.open(member) as handle:
                    check_npy_header(path, handle, f"npz member {member.filename!r} of")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise InvalidInputError(f"npz file {path} cannot be read ({_one_line(exc)})") from exc


def open_image_bounded(path: Path) -> Image.Image:
    """A lazily opened image, refused before decoding when it has more than REGENTREE_MAX_IMAGE_PIXELS pixels."""
    cap = limit("max_image_pixels")
    try:
        with warnings.catch_warnings():  # PIL warns of big images itself; the cap below refuses them in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:  # PIL's own guard, far above the cap, fired while reading the header
        raise InvalidInputError(f"image {path} has more pixels than the limit of {cap} "
                                "(raise REGENTREE_MAX_IMAGE_PIXELS to allow it)") from None
    except OSError as exc:
        raise InvalidInputError(f"image {path} cannot be read ({_one_line(exc)})") from exc
    width, height = image.size
    if width * height > cap:
        image.close()
        raise InvalidInputError(f"image {path} is {width}x{height} pixels, more than the limit of {cap} "
                                "(raise REGENTREE_MAX_IMAGE_PIXELS to allow it)")
    return image
