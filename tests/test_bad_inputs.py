"""Bad input on the command line ends in exit 2 and one `error: ...` line, with nothing on stdout (issue 26).

`CASES` is the table docs/reliability.md lists under "Inputs, configs and memory"; regenerate that section
with `PYTHONPATH=. python tests/test_bad_inputs.py` after changing it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import struct
import sys
import tracemalloc
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from numpy.lib import format as npy_format
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from regentree.cli import app
from regentree.data import load_probes
from regentree.data.idx import load_idx
from regentree.errors import InvalidInputError
from regentree.limits import DEFAULT_LIMITS, LIMIT_DESCRIPTIONS
from regentree.persistence.model_folder import MANIFEST, save_model, sha256_of

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY = ROOT / "docs" / "reliability.md"
SECTION = "## Inputs, configs and memory"
runner = CliRunner()

TINY_CONFIG = {"hidden_dims": [16], "latent_dim": 2, "epochs": 2, "batch_size": 64, "patience": 0,
               "n_regenerations": 5}


@dataclass(frozen=True)
class Case:
    """One bad input: `build(tmp_path, model)` writes its files and returns the CLI arguments."""

    name: str
    message: str  # a part of the one-line error, as the docs show it
    build: Callable[[Path, Path], list[str]]
    env: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- file builders
def _idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def _gzip(payload_parts) -> bytes:
    """A gzip stream of the concatenated byte strings `payload_parts` (written in pieces, kept small)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as stream:
        for part in payload_parts:
            stream.write(part)
    return out.getvalue()


def _zeros(n_bytes: int, block: int = 1 << 20):
    while n_bytes > 0:
        yield bytes(min(block, n_bytes))
        n_bytes -= block


def idx_declaring_huge(tmp: Path, model: Path) -> list[str]:
    """A 100-byte gzip IDX whose header declares 50 million 8x8 images (12.8 GB once decoded)."""
    path = tmp / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(_gzip([_idx_header((50_000_000, 8, 8)), bytes(64)]))
    return ["classify", str(model), str(path)]


def idx_inflating_past_header(tmp: Path, model: Path) -> list[str]:
    """A small gzip IDX declaring ten 8x8 images, followed by 64 MB of zeros when inflated."""
    path = tmp / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(_gzip([_idx_header((10, 8, 8)), bytes(640), *_zeros(64 << 20)]))
    return ["classify", str(model), str(path)]


def _npy_bytes(shape: tuple[int, ...], data: bytes = b"") -> bytes:
    out = io.BytesIO()
    npy_format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return out.getvalue() + data


def npy_claiming_1e12(tmp: Path, model: Path) -> list[str]:
    path = tmp / "probes.npy"
    path.write_bytes(_npy_bytes((10**12, 8, 8)))
    return ["classify", str(model), str(path)]


def npz_member_declaring_huge(tmp: Path, model: Path) -> list[str]:
    """A zip bomb: a few kB of deflated zeros whose .npy header declares 100 million 8x8 images."""
    path = tmp / "probes.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_bytes((100_000_000, 8, 8), bytes(1 << 20)))
    return ["classify", str(model), str(path)]


def npz_member_inflating_huge(tmp: Path, model: Path) -> list[str]:
    """A zip bomb whose member inflates to 32 MB (run with an 8 MB array cap)."""
    path = tmp / "probes.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_bytes((512 * 1024, 8, 8), bytes(32 << 20)))
    return ["classify", str(model), str(path)]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_size(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring a `width` x `height` grey image, with a token data chunk (a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _png_chunk(b"IEND", b""))
    return path


def huge_png(tmp: Path, model: Path) -> list[str]:
    return ["classify", str(model), str(png_of_size(tmp / "huge.png", 20000, 20000))]


def big_png(tmp: Path, model: Path) -> list[str]:
    """5000x5000 pixels: under PIL's own bomb guard, over regentree's cap."""
    return ["classify", str(model), str(png_of_size(tmp / "big.png", 5000, 5000))]


def train_with(params: dict, *options: str) -> Callable[[Path, Path], list[str]]:
    """A builder of `regentree train digits --config C` where C is the tiny config updated by `params`."""

    def build(tmp: Path, model: Path) -> list[str]:
        config = tmp / "config.json"
        config.write_text(json.dumps({**TINY_CONFIG, **params}))
        return ["train", "digits", "--config", str(config), "--out", str(tmp / "out"), "-q", *options]

    return build


def command(*args: str) -> Callable[[Path, Path], list[str]]:
    """A builder of a command line on the model, MODEL standing for its folder."""
    return lambda tmp, model: [str(model) if a == "MODEL" else a for a in args]


def _edit_manifest(model: Path, change) -> None:
    manifest = json.loads((model / MANIFEST).read_text())
    change(manifest)
    (model / MANIFEST).write_text(json.dumps(manifest))


def tampered(change) -> Callable[[Path, Path], list[str]]:
    """A builder of `classify MODEL` on a copy of the model whose manifest `change` edits."""

    def build(tmp: Path, model: Path) -> list[str]:
        copy = shutil.copytree(model, tmp / "tampered")
        _edit_manifest(copy, change)
        return ["classify", str(copy)]

    return build


def reweighted(change) -> Callable[[Path, Path], list[str]]:
    """A builder of `classify MODEL` on a copy whose first VAE's tensors `change` rewrites (hash fixed)."""

    def build(tmp: Path, model: Path) -> list[str]:
        copy = shutil.copytree(model, tmp / "tampered")
        path = copy / json.loads((copy / MANIFEST).read_text())["vaes"][0]["file"]
        save_file(change(load_file(str(path))), str(path))
        _edit_manifest(copy, lambda m: m["vaes"][0].update(sha256=sha256_of(path)))
        return ["classify", str(copy)]

    return build


def _with_nan(tensors: dict) -> dict:
    tensors = {k: v.clone() for k, v in tensors.items()}
    next(iter(tensors.values())).view(-1)[0] = float("nan")
    return tensors


SMALL_ARRAYS = {"REGENTREE_MAX_ARRAY_BYTES": str(8 << 20)}

CASES = [
    Case("gzip IDX probe file declaring 50 million images (100 bytes compressed)",
         "declares an array of shape (50000000, 8, 8)", idx_declaring_huge),
    Case("gzip IDX probe file inflating to 64 MB past its header",
         "trailing bytes after its (10, 8, 8) data", idx_inflating_past_header),
    Case(".npy probe file whose header claims 1e12 images", "declares an array of shape (1000000000000, 8, 8)",
         npy_claiming_1e12),
    Case("zip-bomb .npz whose member's header declares 100 million images",
         "declares an array of shape (100000000, 8, 8)", npz_member_declaring_huge),
    Case("zip-bomb .npz whose member inflates past the array cap (cap lowered to 8 MB)",
         "member 'x.npy' declares 33554560 bytes", npz_member_inflating_huge, SMALL_ARRAYS),
    Case("20000x20000 PNG (a few bytes long)", "huge.png has more pixels than the limit of 16777216", huge_png),
    Case("5000x5000 PNG", "big.png is 5000x5000 pixels, more than the limit of 16777216", big_png),
    Case('config `epochs: "abc"`', "epochs must be an integer >= 1", train_with({"epochs": "abc"})),
    Case("config `epochs: 2.5` (a float for an integer)", "epochs must be an integer >= 1 (at most 1e+07, env REGENTREE_MAX_EPOCHS), got 2.5",
         train_with({"epochs": 2.5})),
    Case("config `batch_size: true` (a boolean for an integer)", "batch_size must be an integer",
         train_with({"batch_size": True})),
    Case("config `hidden_dims: 32`", "hidden_dims must be a list of", train_with({"hidden_dims": 32})),
    Case('config `latent_dim: "x"`', "latent_dim must be an integer >= 1", train_with({"latent_dim": "x"})),
    Case('config `noise_variance: "x"` (sigma2)', "noise_variance must be a finite number > 0, got 'x'",
         train_with({"noise_variance": "x"})),
    Case("config `novelty_threshold: 2.0`", "novelty_threshold must be None or a finite number in [0, 1], got 2.0",
         train_with({"novelty_threshold": 2.0})),
    Case("config `learning_rate: 1e6` (training diverges)", "training diverged (loss nan) at epoch 1",
         train_with({"learning_rate": 1e6})),
    Case("`train --sigma2 inf`", "noise_variance must be a finite number > 0, got inf",
         train_with({}, "--sigma2", "inf")),
    Case("`evaluate --limit 0`", "--limit must be at least 1, got 0", command("evaluate", "MODEL", "digits",
                                                                            "--limit", "0", "-q")),
    Case("`classify --n-probes 0`", "--n-probes must be at least 1, got 0",
         command("classify", "MODEL", "--n-probes", "0")),
    Case('manifest `calibration.max_rejection: "x"`', "calibration.max_rejection must be",
         tampered(lambda m: m.update(calibrated=True, calibration={"max_rejection": "x"}))),
    Case("manifest with a duplicated class", "classes.values holds duplicates",
         tampered(lambda m: m["classes"].update(values=["0", "0", "2", "3"]))),
    Case("manifest with duplicated `vae_keys`", "vae_keys holds duplicates",
         tampered(lambda m: m["extra"].update(vae_keys=["class_0"] * 4))),
    Case("weights holding NaN (hash fixed)", "holds NaN or infinite weights", reweighted(_with_nan)),
    Case("integer weights (hash fixed)", "VAE weights must be floating point",
         reweighted(lambda t: {k: v.to(torch.int32) for k, v in t.items()})),
]


@pytest.fixture(scope="module")
def model(fitted_flat, tmp_path_factory):
    return save_model(fitted_flat, tmp_path_factory.mktemp("bad-inputs") / "model")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_exit_2_and_one_error_line(case, model, tmp_path, monkeypatch):
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, case.build(tmp_path, model))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert case.message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_gzip_idx_bomb_is_never_inflated_past_its_declared_size(tmp_path):
    idx_inflating_past_header(tmp_path, tmp_path)
    tracemalloc.start()
    with pytest.raises(InvalidInputError, match="trailing bytes"):
        load_idx(tmp_path / "bomb-images-idx3-ubyte.gz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20  # the stream inflates to 64 MB


def test_a_gzip_idx_file_still_loads(tmp_path):
    images = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(_gzip([_idx_header((3, 8, 8)), images.tobytes()]))
    np.testing.assert_array_equal(load_idx(path), images)


def test_the_array_cap_counts_decoded_float32_bytes(tmp_path, monkeypatch):
    """A uint8 file of 1 MB becomes 4 MB of float32: a 2 MB cap refuses it."""
    path = tmp_path / "probes.npy"
    np.save(path, np.zeros((16384, 8, 8), dtype=np.uint8))
    monkeypatch.setenv("REGENTREE_MAX_ARRAY_BYTES", str(2 << 20))
    with pytest.raises(InvalidInputError, match="4194304 bytes once decoded"):
        load_probes([path], (8, 8))
    monkeypatch.setenv("REGENTREE_MAX_ARRAY_BYTES", str(4 << 20))
    assert load_probes([path], (8, 8))[0].shape == (16384, 64)


def test_a_sixteen_bit_png_is_scaled_not_clipped(fitted_flat, digits_test, tmp_path):
    """The same image as 16-bit (value * 257) and 8-bit PNG reads alike and gets the same label."""
    pixels = np.round(digits_test.X[:6] * 255).astype(np.uint8).reshape(-1, 8, 8)
    paths8, paths16 = [], []
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"p{i}-8.png")
        Image.fromarray(image.astype(np.uint16) * 257).save(tmp_path / f"p{i}-16.png")
        paths8.append(tmp_path / f"p{i}-8.png")
        paths16.append(tmp_path / f"p{i}-16.png")
    assert Image.open(paths16[0]).mode.startswith("I")
    X8, X16 = load_probes(paths8, (8, 8))[0], load_probes(paths16, (8, 8))[0]
    np.testing.assert_allclose(X16, X8, atol=1e-6)
    assert 0 < X16.max() <= 1 and len(np.unique(X16)) > 2
    np.testing.assert_array_equal(fitted_flat.predict(X16), fitted_flat.predict(X8))


# --------------------------------------------------------------------------- the documented table
def render_section() -> str:
    """The "Inputs, configs and memory" section of docs/reliability.md, from `CASES` and the limits."""
    lines = [SECTION, "",
             "Every case below is a test (`tests/test_bad_inputs.py`): the command exits with code 2, prints one",
             "line `error: ...` on stderr (no traceback) and nothing on stdout; a refused `train` writes no folder.",
             "Files are sized from their headers before anything is decoded, and a compressed stream is never",
             "inflated past the size its header declares.", "",
             "| Case | Message (part) | Exit code |", "|---|---|---|"]
    lines += [f"| {case.name} | `{case.message}` | 2 |" for case in CASES]
    lines += ["", "Limits on untrusted input (`regentree/limits.py`); raise one with its environment variable,",
              "e.g. `REGENTREE_MAX_ARRAY_BYTES=17179869184 regentree classify ...`:", "",
              "| Limit | Default | Environment variable | What it bounds |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {default} | `REGENTREE_{name.upper()}` | {LIMIT_DESCRIPTIONS[name]} |"
              for name, default in DEFAULT_LIMITS.items()]
    lines += ["", "Memory while classifying stays flat in the number of probes: they are decided in chunks whose",
              "(chunk, VAEs, K) distances fit the estimator's `memory_budget_mb` (default 64) four times over",
              "(`DECISION_COPIES` in `regentree/estimators/base.py`), so only one chunk's raw distances exist at a",
              "time. Kept for every probe: its score per class, its KL, the winning VAE's K distances and its trace.",
              "`python benchmarks/memory.py [--quick]` measures peak RSS against n, chunked beside all at once",
              "(`benchmarks/results/memory[_quick].json`)."]
    return "\n".join(lines) + "\n"


def documented_section(text: str) -> str:
    """The section of `text` from its `SECTION` heading to the next level-2 heading (or the end)."""
    match = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    return match.group(0) if match else ""


def test_reliability_doc_lists_the_bad_input_table_and_limits():
    documented = documented_section(RELIABILITY.read_text(encoding="utf-8"))
    assert documented.rstrip("\n") == render_section().rstrip("\n"), (
        "docs/reliability.md is out of date; regenerate it with `PYTHONPATH=. python tests/test_bad_inputs.py`")


def write_section() -> None:
    """Replace (or append) the section in docs/reliability.md."""
    text = RELIABILITY.read_text(encoding="utf-8")
    old = documented_section(text)
    new = render_section()
    if old:
        text = text.replace(old, new + ("\n" if old.endswith("\n\n") else ""))
    else:
        text = text.rstrip("\n") + "\n\n" + new
    RELIABILITY.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(write_section())
