"""Re-generation scoring: K noisy re-generations of each probe by each VAE, and their distances.

All VAEs of a stack are evaluated by one batched kernel (`regentree.scoring.kernels`: explicit matrix
products for MLP VAEs, each VAE's own modules for any other architecture),
probes go through in memory-bounded chunks, and the K latent noise draws come from one fixed bank
drawn from the seed and shared by every probe and every VAE (common random numbers). The bank makes
a probe's distances independent of chunking, sharding and of which other probes are scored with it,
and makes class comparisons less noisy.

Memory bound of one call, besides the (n_probes, n_vaes, K) float32 result: a chunk of probes with
its (chunk, n_vaes, K) distances within `memory_budget_mb`, plus the kernel's decoder blocks of at
most `BLOCK_ROWS` (probe, draw) pairs on the CPU, `CUDA_BLOCK_ROWS` on a GPU (4 * rows * sum of decoder
widths bytes: ~14.6 MB on the CPU, ~935 MB on a GPU for the paper's MNIST VAE), whatever K and the number
of VAEs are.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import numpy as np
import torch

from regentree.backends.devices import resolve_device, resolve_scoring_precision
from regentree.errors import ConfigError, InvalidInputError
from regentree.progress import ProgressCallback, report
from regentree.scoring.distances import DISTANCES, distance_named
from regentree.vae.model import ARCHITECTURES, VAE

__all__ = [
    "DISTANCES", "VAEStack", "level_distances", "make_kernel", "mean_regenerations", "noise_bank", "regenerate_distances",
]

BLOCK_ROWS = 2048
"""(probe, draw) pairs per decoder block on the CPU: large enough for efficient matrix products, small
enough that a block's activations stay in the core's cache (tuned with benchmarks/performance.py)."""

CUDA_BLOCK_ROWS = 131072
"""(probe, draw) pairs per decoder block on a GPU, where blocks must be large to fill the device
(tuned with `benchmarks/performance.py --device cuda`)."""


def block_rows_for(device: torch.device) -> int:
    """Decoder block size of a kernel on `device`: `BLOCK_ROWS` on the CPU, `CUDA_BLOCK_ROWS` elsewhere."""
    return BLOCK_ROWS if device.type == "cpu" else CUDA_BLOCK_ROWS


def noise_bank(n_regenerations: int, latent_dim: int, seed: int) -> torch.Tensor:
    """The fixed bank of K standard-normal latent draws, shape (K, latent_dim)."""
    if n_regenerations < 2:
        raise ConfigError(f"n_regenerations must be at least 2 (a distribution needs samples), got {n_regenerations}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(n_regenerations, latent_dim, generator=generator)


def make_kernel(vaes: Sequence[VAE], device: torch.device, rows: int, precision: str = "float32"):
    """The scoring kernel the VAEs' architecture registers (`regentree.vae.architectures`), over `vaes`."""
    return ARCHITECTURES[vaes[0].config.architecture].kernel(vaes, device, rows, precision)


class VAEStack:
    """VAEs of one config evaluated together by one batched kernel (see `regentree.scoring.kernels`).

    Parameters
    ----------
    vaes : sequence of VAE
        Models sharing one `VAEConfig`.
    device : str
        Torch device the weights live on ("cpu", "cuda", "cuda:N", "auto").
    precision : {"float32", "bfloat16", "auto"}
        Dtype of the decoder's products (see `regentree.scoring.kernels`); reductions stay float32. "auto" is
        bfloat16 where the device multiplies it in hardware (`regentree.backends.devices.has_fast_bfloat16`).
    block_rows : int, optional
        (probe, draw) pairs per decoder block; None: `block_rows_for` the device (a tuned constant).

    Attributes
    ----------
    precision : str
        The precision in force ("float32" or "bfloat16"), "auto" resolved.
    """

    def __init__(self, vaes: Sequence[VAE], device: str = "cpu", precision: str = "float32",
                 block_rows: Optional[int] = None):
        if len(vaes) == 0:
            raise InvalidInputError("VAEStack needs at least one VAE")
        configs = {vae.config for vae in vaes}
        if len(configs) != 1:
            raise ConfigError(f"VAEStack needs VAEs of one config, got {len(configs)} different configs")
        self.config = vaes[0].config
        self.device = resolve_device(device)
        self.precision = resolve_scoring_precision(precision, self.device)
        rows = block_rows_for(self.device) if block_rows is None else int(block_rows)
        self._kernel = make_kernel(list(vaes), self.device, rows, self.precision)

    def __len__(self) -> int:
        return len(self._kernel)

    def select(self, positions: Sequence[int]) -> "VAEStack":
        """The stack of the VAEs at `positions` only, sharing this stack's weights on its device (no copies)."""
        sub = copy.copy(self)
        sub._kernel = self._kernel.select(positions)
        return sub

    @torch.inference_mode()
    def distances(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float, distance: str) -> torch.Tensor:
        """Distances of shape (n_probes, n_vaes, k) for probes `x` (n_probes, input_dim) and noise `eps` (k, latent)."""
        return self._kernel.distances(x, eps, noise_scale, distance_named(distance))


def chunk_size_for(n_vaes: int, n_regenerations: int, config_width: int, memory_budget_mb: float) -> int:
    """Probes per chunk so that a chunk's distances and encoder activations stay within `memory_budget_mb`."""
    bytes_per_probe = 4 * (n_vaes * n_regenerations + 3 * config_width)
    return max(1, int(memory_budget_mb * 2**20 // bytes_per_probe))


def bank_distances(
    stack: VAEStack,
    X: np.ndarray,
    eps: torch.Tensor,
    *,
    noise_scale: float,
    distance: str,
    memory_budget_mb: float,
    out: Optional[np.ndarray] = None,
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Distances (n_probes, n_vaes, k) of validated probes `X` under the noise draws `eps` (k, latent_dim).

    The chunked loop behind `regenerate_distances`; `eps` may be any slice of a noise bank (adaptive
    scoring scores later draws of the same bank), and `out` (float32, that shape) receives the result.
    """
    width = max(stack.config.input_dim, *stack.config.hidden_dims)
    chunk = chunk_size_for(len(stack), eps.shape[0], width, memory_budget_mb)
    if out is None:
        out = np.empty((X.shape[0], len(stack), eps.shape[0]), dtype=np.float32)
    eps = eps.to(stack.device)
    for start in range(0, X.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(X[start : start + chunk], dtype=np.float32)).to(stack.device)
        out[start : start + chunk] = stack.distances(x, eps, noise_scale, distance).cpu().numpy()
        report(progress, "scoring", min(start + chunk, X.shape[0]), X.shape[0])
    return out


def as_stack(vaes: Sequence[VAE] | VAEStack, X: np.ndarray, device: str) -> VAEStack:
    """`vaes` as a `VAEStack`, after checking that probes `X` fit its input size."""
    stack = vaes if isinstance(vaes, VAEStack) else VAEStack(list(vaes), device=device)
    if X.ndim != 2 or X.shape[1] != stack.config.input_dim:
        raise InvalidInputError(
            f"probes have shape {X.shape}, expected (n_probes, {stack.config.input_dim}) for these VAEs"
        )
    return stack


def check_scoring(distance: str, noise_variance: float) -> None:
    """Raise `ConfigError` for an unknown distance or a negative noise variance."""
    distance_named(distance)
    if noise_variance < 0:
        raise ConfigError(f"noise_variance must be >= 0, got {noise_variance}")


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
        Validated probes, float32 (in [0, 1] for Bernoulli VAEs; a Gaussian VAE standardises them itself).
    n_regenerations : int
        K, the number of latent draws per probe and VAE.
    noise_variance : float
        sigma^2, the variance of the re-parameterisation noise (1 = the VAE's own posterior).
    distance : str
        Key of `DISTANCES` ("cross_entropy", "mse", "neg_log_weight").
    seed : int
        Seed of the noise bank.
    memory_budget_mb : float
        Bound on the distances and activations of one chunk of probes (see the module doc).
    device : str
        "cpu", "cuda", "cuda:N" or "auto"; ignored when `vaes` is a `VAEStack`.

    Returns
    -------
    ndarray of shape (n_probes, n_vaes, n_regenerations), float32
    """
    check_scoring(distance, noise_variance)
    stack = as_stack(vaes, X, device)
    eps = noise_bank(n_regenerations, stack.config.latent_dim, seed)
    return bank_distances(
        stack, X, eps, noise_scale=float(noise_variance) ** 0.5, distance=distance,
        memory_budget_mb=memory_budget_mb, progress=progress,
    )


def level_distances(
    vaes: Sequence[VAE] | VAEStack,
    X: np.ndarray,
    requests: Sequence[tuple[Sequence[int], np.ndarray]],
    *,
    n_regenerations: int = 300,
    noise_variance: float = 1.0,
    distance: str = "cross_entropy",
    seed: int = 0,
    memory_budget_mb: float = 256.0,
    device: str = "cpu",
) -> list[np.ndarray]:
    """Distances of many small requests, e.g. all the nodes of one tree level, from one stack and one noise bank.

    Request ``(positions, probe_idx)`` gets the distances (len(probe_idx), len(positions), K) of probes
    ``X[probe_idx]`` under the VAEs at `positions` of `vaes`: exactly what `regenerate_distances` of those
    VAEs and probes returns (same bank, same chunks), without building a stack, a bank and its device copy
    per request, which dominate when a request holds a handful of probes.

    Parameters
    ----------
    vaes : sequence of VAE or VAEStack
        Every VAE any request names; one config for all.
    X : ndarray of shape (n_probes, input_dim)
        Validated probes, float32 (as for `regenerate_distances`).
    requests : sequence of (sequence of int, ndarray of int)
        Positions into `vaes` and indices into `X`.
    n_regenerations, noise_variance, distance, seed, memory_budget_mb, device
        As for `regenerate_distances`; the budget bounds each request's chunks.

    Returns
    -------
    list of ndarray of shape (len(probe_idx), len(positions), n_regenerations), float32, one per request
    """
    check_scoring(distance, noise_variance)
    stack = as_stack(vaes, X, device)
    eps = noise_bank(n_regenerations, stack.config.latent_dim, seed).to(stack.device)
    scale = float(noise_variance) ** 0.5
    return [
        bank_distances(stack.select(positions), X[probe_idx], eps, noise_scale=scale, distance=distance,
                       memory_budget_mb=memory_budget_mb)
        for positions, probe_idx in requests
    ]


@torch.inference_mode()
def mean_regenerations(vaes: Sequence[VAE], X: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Noise-free re-generations, the decoder's mean of x at z = mu(x), of each probe by each VAE (for figures).

    Parameters
    ----------
    vaes : sequence of VAE
    X : ndarray of shape (n_probes, input_dim)
        Validated probes, float32 (in [0, 1] for Bernoulli VAEs; a Gaussian VAE standardises them itself).
    device : str

    Returns
    -------
    ndarray of shape (n_probes, n_vaes, input_dim), float32 means in input units (pixel means in [0, 1] for
    Bernoulli VAEs)
    """
    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(resolve_device(device))
    images = []
    for vae in vaes:
        vae = vae.to(x.device).eval()
        images.append(vae.output_mean(vae.decode(vae.encode(x)[0])).cpu().numpy())
    return np.stack(images, axis=1)
