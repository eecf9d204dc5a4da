"""Size limits on untrusted input (files, manifests, configs), in one table with defaults an env var can raise.

Every limit `name` reads `REGENTREE_<NAME>` (e.g. `REGENTREE_MAX_HIDDEN_DIM=131072`) when set, so a user
with a genuinely larger model or data set raises it without a code change; hostile files stay bounded.
"""

from __future__ import annotations

import os

from regentree.errors import ConfigError

DEFAULT_LIMITS = {
    "max_array_bytes": 4 * 1024**3,
    "max_image_pixels": 4096 * 4096,
    "max_hidden_dim": 65536,
    "max_hidden_layers": 64,
    "max_latent_dim": 65536,
    "max_input_dim": 16 * 1024**2,
    "max_regenerations": 100_000,
    "max_classes": 100_000,
    "max_epochs": 10_000_000,
    "max_batch_size": 1 << 24,
    "max_count": 1 << 40,
    "max_manifest_bytes": 256 * 1024**2,
    "max_json_depth": 64,
    "max_int_digits": 30,
}

LIMIT_DESCRIPTIONS = {
    "max_array_bytes": "bytes of one decoded (float32) array of probes or training images (npy, npz, IDX)",
    "max_image_pixels": "pixels of one PNG/JPEG image, checked before decoding",
    "max_hidden_dim": "width (or channels) of one VAE hidden layer",
    "max_hidden_layers": "entries of hidden_dims",
    "max_latent_dim": "latent dimension of a VAE",
    "max_input_dim": "pixels of one image (n_features)",
    "max_regenerations": "K, re-generations per probe and VAE",
    "max_classes": "classes, VAEs, ensemble members",
    "max_epochs": "training epochs",
    "max_batch_size": "training batch size",
    "max_count": "any other count (samples, shards, workers)",
    "max_manifest_bytes": "bytes of a manifest or class-tree file in a model folder",
    "max_json_depth": "nesting of a manifest, tree or config",
    "max_int_digits": "digits of one JSON integer",
}
"""What each limit bounds, in words (docs/reliability.md lists them with their defaults)."""


def limit(name: str) -> int:
    """The limit `name` (a key of `DEFAULT_LIMITS`), from env var REGENTREE_<NAME> when set."""
    variable = f"REGENTREE_{name.upper()}"
    text = os.environ.get(variable)
    if text is None:
        return DEFAULT_LIMITS[name]
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {variable} must be a positive integer, got {text!r}")
    return value


def all_limits() -> dict[str, int]:
    """Every limit in force, by name (the defaults with env var overrides)."""
    return {name: limit(name) for name in DEFAULT_LIMITS}
