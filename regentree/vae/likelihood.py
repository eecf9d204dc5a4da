"""Decoder likelihoods: Bernoulli for [0, 1] pixels, Gaussian for real-valued features; shared by training and scoring.

Torch and numpy only, and no architecture registry: the scoring kernels and training steps import these without
importing the architecture registry, which imports them. A `Likelihood` is a registry entry (`LIKELIHOODS`);
a `DecoderLikelihood` is one bound to a VAE's own decoder parameters (the Gaussian's log-variance), which is
what the distances and kernels call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

LOG_VARIANCE_RANGE = (-3.0, 2.0)
"""Clamp of the Gaussian decoder's learned per-feature log-variance, in standardised units (0 = the feature's
training variance): the floor (a standard deviation of 22 % of the feature's) keeps a feature that a class holds
almost constant from making a small deviation cost hundreds of nats (a tiny flat model on one split of the raw
digits measured 0.64 accuracy with a floor of -8, 0.86 with -5 and 0.89 with -3; iris changed little); the ceiling (2.7
standard deviations) keeps a feature the decoder cannot fit from being ignored."""

CONSTANT_FEATURE_STD = 1e-6
"""A feature whose training standard deviation is below this share of its magnitude (at least 1) counts as
constant: it is only centred (scale 1, as scikit-learn's StandardScaler does), not divided by a near-zero."""

_LOG_2PI = math.log(2.0 * math.pi)


def fit_standardization(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (shift, scale) of training data `X` (n_samples, n_features): the mean and the standard deviation,
    floored for constant features (`CONSTANT_FEATURE_STD`); float32 arrays of shape (n_features,)."""
    data = np.asarray(X, dtype=np.float64)
    shift, std = data.mean(axis=0), data.std(axis=0)
    constant = std <= CONSTANT_FEATURE_STD * np.maximum(1.0, np.abs(shift))
    return shift.astype(np.float32), np.where(constant, 1.0, std).astype(np.float32)


def standardized(x, standardization):
    """`x` (numpy or torch, (..., n_features)) under a (shift, scale) pair of `fit_standardization`; unchanged for
    None (pixels). The one formula the VAEs, the scoring kernels and the tree's class means share."""
    if standardization is None:
        return x
    shift, scale = standardization
    return (x - shift) / scale


def bernoulli_cross_entropy(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between pixels `x` and Bernoulli `logits`, summed over the last axis (nats)."""
    return (F.softplus(logits) - x * logits).sum(-1)


def gaussian_negative_log_likelihood(mean: torch.Tensor, x: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, exp(log_variance)) summed over the last axis (nats); `log_variance` (input_dim,) broadcasts."""
    return 0.5 * ((x - mean).pow(2) * torch.exp(-log_variance) + log_variance + _LOG_2PI).sum(-1)


def log_density_ratio(z: torch.Tensor, eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log q(z | x) - log p(z) of draws ``z = mu + exp(log_std) * eps``, summed over the latent axis.

    q is the Gaussian proposal N(mu, exp(log_std)^2) the draws came from and p the N(0, I) prior;
    `log_std` broadcasts against `z` and `eps`. Adding it to a draw's cross-entropy gives the negative
    log importance weight, whose mean estimates the negative ELBO.
    """
    return 0.5 * (z.pow(2) - eps.pow(2)).sum(-1) - log_std.sum(-1)


def _bernoulli_nll(logits: torch.Tensor, x: torch.Tensor, log_variance: Optional[torch.Tensor]) -> torch.Tensor:
    return bernoulli_cross_entropy(logits, x)


def _bernoulli_output_gradient(logits: torch.Tensor, x: torch.Tensor, log_variance) -> torch.Tensor:
    return torch.sigmoid(logits).sub_(x)


def _bernoulli_summed_nll(logits: torch.Tensor, x: torch.Tensor, log_variance) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")  # = sum of softplus(l) - x l


def _gaussian_summed_nll(mean: torch.Tensor, x: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    return gaussian_negative_log_likelihood(mean, x, log_variance).sum()


def _identity(mean: torch.Tensor) -> torch.Tensor:
    return mean


def _gaussian_output_gradient(mean: torch.Tensor, x: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    return (mean - x).mul_(torch.exp(-log_variance))


def _gaussian_log_variance_gradient(mean: torch.Tensor, x: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """d(sum over the batch of the NLL) / d log_variance, shape (input_dim,)."""
    return 0.5 * (1.0 - (x - mean).pow(2) * torch.exp(-log_variance)).sum(0)


@dataclass(frozen=True)
class Likelihood:
    """One registered decoder likelihood p(x | z).

    Attributes
    ----------
    name : str
        Its key in `LIKELIHOODS` (`VAEConfig.likelihood`).
    negative_log_likelihood : callable
        (decoder output (..., input_dim), x broadcasting against it, log-variance or None) -> nats (...).
    mean : callable
        Decoder output -> the mean of x it predicts (the sigmoid of Bernoulli logits; the Gaussian mean itself).
    summed_negative_log_likelihood : callable
        (output (n, input_dim), x, log-variance or None) -> the NLL summed over the batch, as the hand-derived
        MLP step reports it.
    output_gradient : callable
        Element-wise d NLL / d output, (output, x, log-variance) -> (..., input_dim): the hand-derived MLP step.
    log_variance_gradient : callable or None
        (output (n, input_dim), x, log-variance) -> d(summed NLL) / d log-variance; None without a variance.
    real_valued : bool
        Whether x is any real feature vector: the VAE then standardises its input with the training mean and
        standard deviation and learns a per-feature log-variance (`regentree.vae.model.VAE`); else x is pixels
        in [0, 1].
    """

    name: str
    negative_log_likelihood: Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
    mean: Callable[[torch.Tensor], torch.Tensor]
    summed_negative_log_likelihood: Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
    output_gradient: Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
    log_variance_gradient: Optional[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]
    real_valued: bool


LIKELIHOODS: dict[str, Likelihood] = {
    entry.name: entry
    for entry in (
        Likelihood("bernoulli", _bernoulli_nll, torch.sigmoid, _bernoulli_summed_nll, _bernoulli_output_gradient,
                   None, real_valued=False),
        Likelihood("gaussian", gaussian_negative_log_likelihood, _identity, _gaussian_summed_nll,
                   _gaussian_output_gradient, _gaussian_log_variance_gradient, real_valued=True),
    )
}
"""Likelihood name -> entry: "bernoulli" (the paper's, pixels in [0, 1]) and "gaussian" (standardised real
features, a learned per-feature variance clamped to `LOG_VARIANCE_RANGE`)."""


@dataclass(frozen=True)
class DecoderLikelihood:
    """A `Likelihood` bound to one VAE's decoder parameters: what a distance or kernel calls."""

    likelihood: Likelihood
    log_variance: Optional[torch.Tensor] = None

    def negative_log_likelihood(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | output) summed over the last axis (nats)."""
        return self.likelihood.negative_log_likelihood(output, x, self.log_variance)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        """The mean of x the decoder output predicts."""
        return self.likelihood.mean(output)

    def to(self, device: torch.device) -> "DecoderLikelihood":
        """This likelihood with its parameters on `device`."""
        variance = None if self.log_variance is None else self.log_variance.to(device)
        return DecoderLikelihood(self.likelihood, variance)


BERNOULLI = DecoderLikelihood(LIKELIHOODS["bernoulli"])
"""The Bernoulli decoder likelihood, which has no parameters of its own."""
