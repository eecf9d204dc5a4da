"""Log-likelihood terms of the Bernoulli-decoder VAE, shared by training, scoring and the distances.

Torch only, and no registry: the scoring kernels and training steps import these without importing the
architecture registry, which imports them.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def bernoulli_cross_entropy(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between pixels `x` and Bernoulli `logits`, summed over the last axis (nats)."""
    return (F.softplus(logits) - x * logits).sum(-1)


def log_density_ratio(z: torch.Tensor, eps: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log q(z | x) - log p(z) of draws ``z = mu + exp(log_std) * eps``, summed over the latent axis.

    q is the Gaussian proposal N(mu, exp(log_std)^2) the draws came from and p the N(0, I) prior;
    `log_std` broadcasts against `z` and `eps`. Adding it to a draw's cross-entropy gives the negative
    log importance weight, whose mean estimates the negative ELBO.
    """
    return 0.5 * (z.pow(2) - eps.pow(2)).sum(-1) - log_std.sum(-1)
