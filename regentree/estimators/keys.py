"""The names of a model's VAEs and the training seeds derived from them, shared by fit, add-class and persistence."""

from __future__ import annotations

import zlib

BASE_KEY = "base"
"""Key (and training-seed name) of the base VAE that class and node VAEs start from."""


def class_key(class_index: int) -> str:
    """Key of the VAE of class `class_index` in a flat model."""
    return f"class_{int(class_index)}"


def node_key(node: int) -> str:
    """Key of the VAE owned by tree node `node`."""
    return f"node_{int(node)}"


def task_seed(random_state: int, key: str) -> int:
    """Seed of one VAE's training: stable across runs, processes and added classes."""
    return (int(random_state) * 1_000_003 + zlib.crc32(key.encode())) % 2**31
