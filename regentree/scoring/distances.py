"""The distance registry: how one re-generation is compared with its probe, as a named `Distance` entry.

A `Distance` says everything the kernels need to know about it: its pixel distance of (decoder output, x) under
the VAE's decoder likelihood (`regentree.vae.likelihood.DecoderLikelihood`), whether it adds the latent correction
log q(z | x) - log p(z) of each draw, and whether its pixel part is the decoder's negative log-likelihood (so the
`mlp` kernel's fused cross-entropy path applies to Bernoulli decoders). Every distance works under every
likelihood: "cross_entropy" is the decoder's negative log-likelihood (the Bernoulli cross-entropy, or the
Gaussian NLL of the standardised features), "mse" compares the predicted mean with the (standardised) probe.
New distances are new entries; no code branches on a distance's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from regentree.constraints import check_choice
from regentree.vae.likelihood import BERNOULLI, DecoderLikelihood

PixelDistance = Callable[[torch.Tensor, torch.Tensor, DecoderLikelihood], torch.Tensor]


@dataclass(frozen=True)
class Distance:
    """One registered distance between a probe and its re-generations.

    Attributes
    ----------
    name : str
        Its key in `DISTANCES` (the estimators' `distance` parameter).
    pixel_distance : callable
        (decoder output of shape (..., input_dim), x broadcasting against it, the VAE's `DecoderLikelihood`)
        -> distances of shape (...).
    latent_corrected : bool
        Whether a draw's value adds log q(z | x) - log p(z) (`regentree.vae.likelihood.log_density_ratio`).
    negative_log_likelihood : bool
        Whether `pixel_distance` is the decoder's negative log-likelihood, which the `mlp` kernel computes fused
        for a Bernoulli decoder.
    """

    name: str
    pixel_distance: PixelDistance
    latent_corrected: bool = False
    negative_log_likelihood: bool = False

    def __call__(self, output: torch.Tensor, x: torch.Tensor, decoder: DecoderLikelihood = BERNOULLI) -> torch.Tensor:
        """The pixel distance of re-generation `output` to probe `x` (as the VAE sees it), over the last axis."""
        return self.pixel_distance(output, x, decoder)


def _negative_log_likelihood(output: torch.Tensor, x: torch.Tensor, decoder: DecoderLikelihood) -> torch.Tensor:
    """-log p(x | output) under the decoder likelihood, summed over the last axis."""
    return decoder.negative_log_likelihood(output, x)


def _mean_squared_error(output: torch.Tensor, x: torch.Tensor, decoder: DecoderLikelihood) -> torch.Tensor:
    """Mean squared error between the re-generated means and the probe, over the last axis."""
    return (decoder.mean(output) - x).pow(2).mean(-1)


DISTANCES: dict[str, Distance] = {
    entry.name: entry
    for entry in (
        Distance("cross_entropy", _negative_log_likelihood, negative_log_likelihood=True),
        Distance("mse", _mean_squared_error),
        Distance("neg_log_weight", _negative_log_likelihood, latent_corrected=True, negative_log_likelihood=True),
    )
}
"""Distance name -> entry. "cross_entropy" is the paper's distortion (the decoder's negative log-likelihood); "neg_log_weight" adds log q(z | x) -
log p(z) of each draw, making a draw's value its negative log importance weight: the mean over draws
estimates the negative ELBO and the "likelihood" statistic the importance-weighted negative log-likelihood
-log p(x)."""


def distance_named(name: str) -> Distance:
    """The registered `Distance` called `name`; a one-line `ConfigError` listing the choices otherwise."""
    check_choice("distance", name, DISTANCES)
    return DISTANCES[name]
