"""Re-generation scoring: K noisy re-generations of each probe by each VAE, and their distances.

All VAEs of a stack are evaluated in one batched call (`torch.func.vmap` over stacked parameters),
probes go through in memory-bounded chunks, and the K latent noise draws come from one fixed bank
drawn from the seed and shared by every probe and every VAE (common random numbers). The bank makes
a probe's distances independent of chunking, sharding and of which other probes are scored with it,
and makes class comparisons less noisy.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from regentree.errors import ConfigError, InvalidInputError
from regentree.progress import ProgressCallback, report
from regentree.vae import VAE, bernoulli_cross_entropy


def _mean_squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the re-generated pixel means and the probe, over the last axis."""
    return (torch.sigmoid(logits) - x).pow(2).mean(-1)


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": bernoulli_cross_entropy,
    "mse": _mean_squared_error,
}

STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": lambda d: d.mean(axis=-1),
    "median": lambda d: np.median(d, axis=-1),
}


def check_choice(name: str, value: str, registry: dict) -> None:
    """Raise `ConfigError` unless `value` is a key of `registry`."""
    if value not in registry:
        raise ConfigError(f"{name}={value!r} is unknown; choose one of {sorted(registry)}")


def noise_bank(n_regenerations: int, latent_dim: int, seed: int) -> torch.Tensor:
    """The fixed bank of K standard-normal latent draws, shape (K, latent_dim)."""
    if n_regenerations < 2:
        raise ConfigError(f"n_regenerations must be at least 2 (a distribution needs samples), got {n_regenerations}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n_regenerations, latent_dim, generator=generator)


class _Regenerator(nn.Module):
    """Wraps a VAE so that its forward pass is 'distances of K re-generations'."""

    def __init__(self, vae: VAE):
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float, distance: str) -> torch.Tensor:
        logits = self.vae.regenerate(x, eps, noise_scale)
        return DISTANCES[distance](logits, x.unsqueeze(1))


class VAEStack:
    """VAEs of one config with parameters stacked on a leading axis, evaluated in one batched call.

    Parameters
    ----------
    vaes : sequence of VAE
        Models sharing one `VAEConfig`.
    device : str
        Torch device the stacked parameters live on.
    """

    def __init__(self, vaes: Sequence[VAE], device: str = "cpu"):
        if len(vaes) == 0:
            raise InvalidInputError("VAEStack needs at least one VAE")
        configs = {vae.config for vae in vaes}
        if len(configs) != 1:
            raise ConfigError(f"VAEStack needs VAEs of one config, got {len(configs)} different configs")
        self.config = vaes[0].config
        self.device = torch.device(device)
        wrapped = [_Regenerator(vae).to(self.device).eval() for vae in vaes]
        params, buffers = stack_module_state(wrapped)
        self._params = {k: v.detach() for k, v in params.items()}
        self._buffers = buffers
        self._template = copy.deepcopy(wrapped[0]).to("meta")

    def __len__(self) -> int:
        return next(iter(self._params.values())).shape[0]

    @torch.no_grad()
    def distances(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float, distance: str) -> torch.Tensor:
        """Distances of shape (n_vaes, n_probes, K) for probes `x` (n_probes, input_dim) and noise `eps` (K, latent)."""

        def one_vae(params: dict, buffers: dict) -> torch.Tensor:
            return functional_call(self._template, (params, buffers), (x, eps, noise_scale, distance))

        return vmap(one_vae)(self._params, self._buffers)


def chunk_size_for(n_vaes: int, n_regenerations: int, config_width: int, memory_budget_mb: float) -> int:
    """Probes per chunk so that the largest intermediate tensors stay within `memory_budget_mb`."""
    bytes_per_probe = 4 * 3 * n_vaes * n_regenerations * config_width
    return max(1, int(memory_budget_mb * 2**20 // bytes_per_probe))


def regenerate_distances(
    vaes: Sequence[VAE] | VAEStack,
    X: np.ndarray,
    *,
    n_regenerations: int = 300,
    noise_variance: float = 1.0,
    distance: str = "cross_entropy",
    seed: int = 0,
    memory_budget_mb: float = 256.0,
    device: str = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Distances between each probe and K re-generations of it by each VAE.

    Parameters
    ----------
    vaes : sequence of VAE or VAEStack
        The VAEs that score the probes; one config for all.
    X : ndarray of shape (n_probes, input_dim)
        Validated probes, float32 in [0, 1].
    n_regenerations : int
        K, the number of latent draws per probe and VAE.
    noise_variance : float
        sigma^2, the variance of the re-parameterisation noise (1 = the VAE's own posterior).
    distance : {"cross_entropy", "mse"}
    seed : int
        Seed of the noise bank.
    memory_budget_mb : float
        Bound on the largest intermediate tensors of one chunk.

    Returns
    -------
    ndarray of shape (n_probes, n_vaes, n_regenerations), float32
    """
    check_choice("distance", distance, DISTANCES)
    if noise_variance < 0:
        raise ConfigError(f"noise_variance must be >= 0, got {noise_variance}")
    stack = vaes if isinstance(vaes, VAEStack) else VAEStack(list(vaes), device=device)
    if X.ndim != 2 or X.shape[1] != stack.config.input_dim:
        raise InvalidInputError(
            f"probes have shape {X.shape}, expected (n_probes, {stack.config.input_dim}) for these VAEs"
        )
    eps = noise_bank(n_regenerations, stack.config.latent_dim, seed).to(stack.device)
    width = max(stack.config.input_dim, *stack.config.hidden_dims)
    chunk = chunk_size_for(len(stack), n_regenerations, width, memory_budget_mb)
    out = np.empty((X.shape[0], len(stack), n_regenerations), dtype=np.float32)
    noise_scale = float(noise_variance) ** 0.5
    for start in range(0, X.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(X[start : start + chunk])).to(stack.device)
        d = stack.distances(x, eps, noise_scale, distance)
        out[start : start + chunk] = d.permute(1, 0, 2).cpu().numpy()
        report(progress, "scoring", min(start + chunk, X.shape[0]), X.shape[0])
    return out


def summarize(distances: np.ndarray, statistic: str = "mean") -> np.ndarray:
    """Per-VAE summary of the K distances: (n_probes, n_vaes, K) -> (n_probes, n_vaes)."""
    check_choice("decision", statistic, STATISTICS)
    return STATISTICS[statistic](distances)
