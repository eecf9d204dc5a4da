"""Torch device selection shared by training and scoring: "cpu", "cuda", "cuda:N" or "auto"."""

from __future__ import annotations

import torch

from regentree.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """The torch device for a `device` parameter; "auto" picks CUDA when torch sees a GPU, else the CPU."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device={name!r} is unknown; choose 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} was asked for, but torch sees no CUDA device here; use 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a valid torch device") from None
