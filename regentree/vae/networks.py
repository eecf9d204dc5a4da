"""Encoder and decoder builders of the registered architectures (`regentree.vae.architectures`).

`mlp`: the paper's Linear/ReLU stacks; `conv`: two stride-2 convolutions for square images whose side is a
multiple of 4. Each builder takes a `VAEConfig` and returns a module; a config check says whether a config
is buildable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from regentree.errors import ConfigError

if TYPE_CHECKING:
    from regentree.vae.model import VAEConfig


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp_encoder(config: VAEConfig) -> nn.Module:
    """Encoder x -> 2 * latent_dim numbers (mu and log-variance)."""
    return _mlp([config.input_dim, *config.hidden_dims, 2 * config.latent_dim])


def mlp_decoder(config: VAEConfig) -> nn.Module:
    """Decoder z -> Bernoulli logits of every pixel."""
    return _mlp([config.latent_dim, *reversed(config.hidden_dims), config.input_dim])


def _image_side(input_dim: int) -> int:
    """Side of a square image of `input_dim` pixels (0 when it is not square)."""
    side = math.isqrt(input_dim)
    return side if side * side == input_dim else 0


def check_conv_config(config: VAEConfig) -> None:
    """Raise `ConfigError` unless `config` describes a buildable convolutional VAE."""
    side = _image_side(config.input_dim)
    if side == 0 or side % 4:
        raise ConfigError(
            f"the conv architecture needs square images whose side is a multiple of 4, got input_dim {config.input_dim}"
        )
    if len(config.hidden_dims) != 3:
        raise ConfigError(
            "the conv architecture takes hidden_dims = (channels 1, channels 2, dense width), "
            f"got {config.hidden_dims!r}"
        )


class _ImageReshape(nn.Module):
    """Reshape the last axis of (..., features) to (channels, side, side) and back around an image module,
    so convolutions see a flat batch whatever the leading axes (probes, draws) are. The maps are laid out
    channels-last, which the CPU's transposed convolution runs fastest."""

    def __init__(self, module: nn.Module, channels: int, side: int):
        super().__init__()
        self.module, self.channels, self.side = module, channels, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = x.reshape(-1, self.channels, self.side, self.side).contiguous(memory_format=torch.channels_last)
        return self.module(images).reshape(*lead, -1)


def conv_encoder(config: VAEConfig) -> nn.Module:
    """Two stride-2 4x4 convolutions (side -> side / 4), a dense layer, then mu and log-variance."""
    side = _image_side(config.input_dim)
    channels_1, channels_2, dense = config.hidden_dims
    convolutions = nn.Sequential(
        nn.Conv2d(1, channels_1, 4, 2, 1), nn.ReLU(), nn.Conv2d(channels_1, channels_2, 4, 2, 1), nn.ReLU()
    )
    return nn.Sequential(
        _ImageReshape(convolutions, 1, side),
        _mlp([channels_2 * (side // 4) ** 2, dense, 2 * config.latent_dim]),
    )


def conv_decoder(config: VAEConfig) -> nn.Module:
    """The encoder mirrored: dense layers to a (channels 2, side / 4, side / 4) map, then two 2x up-samplings:
    a stride-2 transposed convolution, and a sub-pixel convolution (3x3 to 4 channels, pixel shuffle), which
    on the CPU runs faster than a transposed convolution to a single channel."""
    side = _image_side(config.input_dim)
    channels_1, channels_2, dense = config.hidden_dims
    deconvolutions = nn.Sequential(
        nn.ConvTranspose2d(channels_2, channels_1, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(channels_1, 4, 3, padding=1), nn.PixelShuffle(2),
    )
    return nn.Sequential(
        _mlp([config.latent_dim, dense, channels_2 * (side // 4) ** 2]),
        nn.ReLU(),
        _ImageReshape(deconvolutions, channels_2, side // 4),
    )


def check_mlp_config(config: VAEConfig) -> None:
    """Every valid `VAEConfig` builds an `mlp` VAE: nothing to check beyond the config's own checks."""
