"""The distance registry: how one re-generation is compared with its probe, as a named `Distance` entry.

A `Distance` says everything the kernels need to know about it: its pixel distance of (logits, x), whether
it adds the latent correction log q(z | x) - log p(z) of each draw, and whether its pixel part is the
Bernoulli cross-entropy (so the `mlp` kernel's fused cross-entropy path applies). New distances are new
entries; no code branches on a distance's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from regentree.constraints import check_choice
from regentree.vae.likelihood import bernoulli_cross_entropy

PixelDistance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Distance:
    """One registered distance between a probe and its re-generations.

    Attributes
    ----------
    name : str
        Its key in `DISTANCES` (the estimators' `distance` parameter).
    pixel_distance : callable
        (logits of shape (..., input_dim), x broadcasting against them) -> distances of shape (...).
    latent_corrected : bool
        Whether a draw's value adds log q(z | x) - log p(z) (`regentree.vae.likelihood.log_density_ratio`).
    bernoulli : bool
        Whether `pixel_distance` is the Bernoulli cross-entropy, which the `mlp` kernel computes fused.
    """

    name: str
    pixel_distance: PixelDistance
    latent_corrected: bool = False
    bernoulli: bool = False

    def __call__(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The pixel distance of re-generation `logits` to probe pixels `x`, over the last axis."""
        return self.pixel_distance(logits, x)


def _mean_squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the re-generated pixel means and the probe, over the last axis."""
    return (torch.sigmoid(logits) - x).pow(2).mean(-1)


DISTANCES: dict[str, Distance] = {
    entry.name: entry
    for entry in (
        Distance("cross_entropy", bernoulli_cross_entropy, bernoulli=True),
        Distance("mse", _mean_squared_error),
        Distance("neg_log_weight", bernoulli_cross_entropy, latent_corrected=True, bernoulli=True),
    )
}
"""Distance name -> entry. "cross_entropy" is the paper's distortion; "neg_log_weight" adds log q(z | x) -
log p(z) of each draw, making a draw's value its negative log importance weight: the mean over draws
estimates the negative ELBO and the "likelihood" statistic the importance-weighted negative log-likelihood
-log p(x)."""


def distance_named(name: str) -> Distance:
    """The registered `Distance` called `name`; a one-line `ConfigError` listing the choices otherwise."""
    check_choice("distance", name, DISTANCES)
    return DISTANCES[name]
