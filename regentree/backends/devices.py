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


SCORING_PRECISION_CHOICES = ("auto", "float32", "bfloat16")
"""Values of the `scoring_precision` parameter; "auto" is bfloat16 where the device multiplies it natively."""


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware (CPU: AMX or AVX512-BF16; GPU: compute 8.0+).

    Elsewhere bfloat16 products are emulated and slower than float32, so "auto" keeps float32 there.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    cpu = torch.cpu
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))


def resolve_scoring_precision(precision: str, device: torch.device) -> str:
    """The dtype name scoring runs in: `precision` itself, or for "auto" bfloat16 where it is fast, else float32."""
    if precision not in SCORING_PRECISION_CHOICES:
        raise ConfigError(f"scoring_precision={precision!r} is unknown; choose one of {list(SCORING_PRECISION_CHOICES)}")
    if precision != "auto":
        return precision
    return "bfloat16" if has_fast_bfloat16(device) else "float32"
