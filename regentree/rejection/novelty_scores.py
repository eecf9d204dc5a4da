"""Novelty statistics that correct a class VAE's distortion for how easy the probe is to encode; torch-free.

A raw distortion (negative log-likelihood) fails as a novelty score when the unseen objects are simpler
than the known ones: an MNIST digit, mostly black, costs a Fashion-MNIST VAE fewer nats than most garments
(Nalisnick et al. 2019, "Do deep generative models know what they don't know?"). The statistics here
subtract what any model would pay for the probe, so that only the class-specific part remains:

- ``"raw"``: the winning class VAE's distortion d(x), as in the paper;
- ``"base_ratio"``: d(x) minus the distortion of the same probe under the shared base VAE trained on all
  classes, a likelihood ratio to a background model (Ren et al. 2019, "Likelihood ratios for OOD detection");
- ``"complexity"``: d(x) minus the PNG code length of the 8-bit probe in nats, the input-complexity
  correction (Serrà et al. 2020, "Input complexity and out-of-distribution detection with likelihood-based
  generative models").

Every statistic is "higher = more novel"; `NoveltyScorer` turns it into a class-conditional conformal p-value.
"""

from __future__ import annotations

import io
import math
from typing import Optional

import numpy as np
from PIL import Image

from regentree.errors import ConfigError, InvalidInputError

__all__ = ["NOVELTY_SCORES", "RAW_SCORE", "code_length_nats", "novelty_statistic"]

RAW_SCORE = "raw"
NOVELTY_SCORES = (RAW_SCORE, "base_ratio", "complexity")
"""Names of the novelty statistics, in the order of the module doc."""

_NATS_PER_BYTE = 8.0 * math.log(2.0)


def _png_bytes(image: np.ndarray) -> int:
    """Size in bytes of one 8-bit grey image written as PNG at the highest compression."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", optimize=True)
    return buffer.tell()


def code_length_nats(X, image_shape: tuple[int, int]) -> np.ndarray:
    """PNG code length of each probe in nats: a compressor's estimate of the probe's complexity.

    `X` is (n_probes, height * width) with pixels in [0, 1], quantized to 8 bits first. The PNG header is
    a constant offset, which the class-conditional p-values ignore.
    """
    arr = np.asarray(X, dtype=np.float32)
    height, width = (int(s) for s in image_shape)
    if arr.ndim != 2 or arr.shape[1] != height * width:
        raise InvalidInputError(f"X must be (n_probes, {height * width}) for images {height}x{width}, got {arr.shape}")
    images = np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, height, width)
    return np.array([_png_bytes(image) for image in images], dtype=np.float64) * _NATS_PER_BYTE


def novelty_statistic(score: str, distortion, *, base_distortion: Optional[np.ndarray] = None,
                      code_length: Optional[np.ndarray] = None) -> np.ndarray:
    """The novelty statistic `score` (a name of `NOVELTY_SCORES`) of probes with winner distortion `distortion`.

    "base_ratio" needs `base_distortion` (the base VAE's distortion of each probe), "complexity" needs
    `code_length` (`code_length_nats` of each probe); all arrays are (n_probes,) in nats.
    """
    if score not in NOVELTY_SCORES:
        raise ConfigError(f"novelty score {score!r} is unknown; choose one of {list(NOVELTY_SCORES)}")
    d = np.asarray(distortion, dtype=np.float64)
    if score == RAW_SCORE:
        return d
    name, other = ("base_distortion", base_distortion) if score == "base_ratio" else ("code_length", code_length)
    if other is None:
        raise InvalidInputError(f"the {score!r} novelty score needs {name}")
    other = np.asarray(other, dtype=np.float64)
    if other.shape != d.shape:
        raise InvalidInputError(f"{name} has shape {other.shape}, distortion {d.shape}")
    return d - other
