"""Batched re-generation kernels: the distances of K re-generations of probes by a stack of VAEs.

A kernel holds the weights of M VAEs of one `VAEConfig` and turns probes `x` (n, input_dim) and a
slice of the noise bank `eps` (k, latent_dim) into distances (n, M, k) under a `Distance` entry
(`regentree.scoring.distances`). Each architecture names its kernel (`regentree.vae.architectures`): `mlp` has an explicit kernel of fused matrix products (`torch.addmm` with the
bias folded in, in-place ReLU, re-used block buffers), every other architecture (`conv`) uses
the generic `ModuleKernel`, which runs each VAE's own modules, so a new architecture works unchanged.

The `mlp` kernel computes the Bernoulli cross-entropy ``sum_d softplus(l_d) - x_d l_d`` on a float32
copy of each block's logits: the second term is one batched product of that copy with the probe's
pixels, and the softplus passes then run in place in the copy (the logits stay for the rare rows whose
exp overflows). Any other pair of distance and decoder likelihood (a Gaussian decoder's NLL, `mse`) is
the `Distance` entry itself, called with the VAE's `DecoderLikelihood`; a VAE of real-valued features sees
its probes standardised (`VAE.standardize`) by both kernels.

A latent-corrected distance (`Distance.latent_corrected`: `neg_log_weight`) is that cross-entropy plus
log q(z | x) - log p(z) of each draw (`regentree.vae.likelihood.log_density_ratio`), computed from the draw's z.

Precision: with ``precision="bfloat16"`` the `mlp` kernel keeps its decoder weights and activations in
bfloat16 (matrix products accumulate in float32 inside oneDNN/cuBLAS, which is what AMX and tensor
cores run fast) while the encoder, the latent draws, the probe-side term ``x . l`` and the
softplus sum stay in float32; the generic kernel runs its decoder under bfloat16 autocast. Only the
decoder is lowered because re-generation is almost all decoder products (K draws per probe against
one encoder pass), and the float32 reductions keep a distance's rounding error far below the spread
of its K draws.

Memory: the decoder runs on blocks of at most `rows` (probe, draw) pairs (and the generic kernel's
encoder on blocks of `rows` probes), so its intermediates take ``4 * rows * (sum of decoder widths)`` bytes whatever n, M and k are (for `conv`, the widths are
its feature maps' sizes, e.g. 32 x 14 x 14 and 64 x 7 x 7 on MNIST).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from regentree.vae.likelihood import DecoderLikelihood, log_density_ratio, standardized

if TYPE_CHECKING:
    from regentree.scoring.distances import Distance
    from regentree.vae.model import VAE

SCORING_PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Scoring precision name -> dtype of the decoder's weights and activations (see the module doc)."""


def _linear_layers(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight^T of shape (in, out), bias of shape (out,)) of each `nn.Linear` of an MLP, in order.

    Views, not copies: BLAS multiplies by a transposed operand as fast as by a contiguous one, and a
    tree builds a kernel per level, where copying every weight would be paid again each time.
    """
    return [(m.weight.detach().t(), m.bias.detach()) for m in module if isinstance(m, nn.Linear)]


@torch.no_grad()
def _decoder_likelihood(vae: VAE, device: torch.device) -> DecoderLikelihood:
    """The VAE's decoder likelihood with its parameters detached, on `device`."""
    return vae.decoder_likelihood().to(device)


def _standardization(vae: VAE, device: torch.device):
    """(shift, scale) of a VAE that standardises its input, on `device`; None for one that does not."""
    if not vae.likelihood.real_valued:
        return None
    return vae.input_shift.detach().to(device), vae.input_scale.detach().to(device)


def _blocks(n: int, k: int, rows: int):
    """((p0, p1), (k0, k1)) slices of n probes x k draws in blocks of at most `rows` (probe, draw) pairs:
    whole probes when k <= rows, else one probe with its draws split."""
    per_block, draws = max(1, rows // k), min(k, rows)
    for p0 in range(0, n, per_block):
        for k0 in range(0, k, draws):
            yield (p0, min(p0 + per_block, n)), (k0, min(k0 + draws, k))


def _softplus_sum_(values: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis of softplus(l) = log(1 + exp(l)), computed in place in `values`.

    `values` is a float32 copy of the 2-d `logits` (which may be bfloat16). exp and log are vectorised
    on the CPU where torch's softplus and log1p are not: this takes about half the time of
    ``F.softplus(l).sum(-1)``. Rows where exp overflows (l > 88) are summed again exactly from
    `logits` with torch's softplus. For l < -17 float32 rounds 1 + exp(l) to 1 and drops
    exp(l) < 4e-8 nats a pixel. On a GPU, where every element-wise pass costs a trip through memory,
    torch's one-pass softplus is used.
    """
    if values.device.type != "cpu":
        return F.softplus(values).sum(-1)
    total = values.exp_().add_(1.0).log_().sum(-1)
    overflow = torch.isinf(total)
    if bool(overflow.any()):
        total[overflow] = F.softplus(logits[overflow].float()).sum(-1)
    return total


class MLPKernel:
    """Explicit matrix products for stacks of `mlp` VAEs (Linear/ReLU encoder and decoder).

    Parameters
    ----------
    vaes : sequence of VAE
        `mlp` VAEs of one config.
    device : torch.device
    rows : int
        Most (probe, draw) pairs per decoder block; bounds the intermediates (see the module doc).
    precision : {"float32", "bfloat16"}
        Dtype of the decoder's weights and activations (see the module doc).
    """

    def __init__(self, vaes: Sequence[VAE], device: torch.device, rows: int, precision: str = "float32"):
        self.device = device
        self.rows = max(1, int(rows))
        self.dtype = SCORING_PRECISIONS[precision]
        self.config_output_dim = vaes[0].config.input_dim
        self.encoders = [[(w.to(device), b.to(device)) for w, b in _linear_layers(v.encoder)] for v in vaes]
        self.standardizations = [_standardization(v, device) for v in vaes]
        self.likelihoods = [_decoder_likelihood(v, device) for v in vaes]
        self.fused = not vaes[0].likelihood.real_valued  # the fused cross-entropy of Bernoulli decoders applies
        self.decoders = [
            [(w.to(device, self.dtype), b.to(device, self.dtype)) for w, b in _linear_layers(v.decoder)] for v in vaes
        ]
        self.work = torch.empty(0, device=device)  # float32 copy of a block's logits, grown on demand

    def __len__(self) -> int:
        return len(self.encoders)

    def select(self, positions: Sequence[int]) -> "MLPKernel":
        """The kernel of the VAEs at `positions` only, sharing these weights (no copies, no device moves)."""
        return _select(self, positions, ("encoders", "standardizations", "likelihoods", "decoders"))

    def distances(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float, distance: Distance) -> torch.Tensor:
        """Distances (n, M, k) of probes `x` (n, input_dim) under noise draws `eps` (k, latent_dim)."""
        n, k = x.shape[0], eps.shape[0]
        out = torch.empty(n, len(self), k, device=self.device)
        corrected, fused = distance.latent_corrected, distance.negative_log_likelihood and self.fused
        if fused and self.work.numel() < min(n * k, self.rows) * self.config_output_dim:
            self.work = torch.empty(min(n * k, self.rows) * self.config_output_dim, device=self.device)
        for m, (encoder, decoder) in enumerate(zip(self.encoders, self.decoders)):
            seen = standardized(x, self.standardizations[m])
            mu, std = self._encode(encoder, seen, noise_scale)
            log_std = std.log() if corrected else None
            for (p0, p1), (k0, k1) in _blocks(n, k, self.rows):
                z = torch.addcmul(mu[p0:p1, None, :], std[p0:p1, None, :], eps[None, k0:k1, :])
                h = z.reshape(-1, z.shape[-1]).to(self.dtype)
                for w, b in decoder[:-1]:
                    h = torch.addmm(b, h, w).clamp_min_(0.0)
                logits = torch.addmm(decoder[-1][1], h, decoder[-1][0])
                if fused:
                    values = self.work[: logits.numel()].view(logits.shape).copy_(logits)
                    linear = torch.bmm(values.view(p1 - p0, k1 - k0, -1), seen[p0:p1, :, None]).squeeze(-1)
                    soft = _softplus_sum_(values, logits).view(p1 - p0, k1 - k0)
                    out[p0:p1, m, k0:k1] = soft - linear
                else:
                    logits = logits.float().view(p1 - p0, k1 - k0, -1)
                    out[p0:p1, m, k0:k1] = distance(logits, seen[p0:p1, None, :], self.likelihoods[m])
                if corrected:
                    out[p0:p1, m, k0:k1] += log_density_ratio(z, eps[None, k0:k1, :], log_std[p0:p1, None, :])
        return out

    @staticmethod
    def _encode(encoder: list, x: torch.Tensor, noise_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and noise-scaled std of q(z | x), each (n, latent_dim)."""
        h = x
        for i, (w, b) in enumerate(encoder):
            h = torch.addmm(b, h, w)
            if i < len(encoder) - 1:
                h.clamp_min_(0.0)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, torch.exp(0.5 * logvar) * noise_scale


class ModuleKernel:
    """Generic kernel for any architecture: each VAE's own encoder and decoder, on blocks of (probe, draw) pairs.

    A loop over the VAEs rather than `torch.func.vmap` over stacked parameters: vmap turns every
    convolution into a grouped one, and on the CPU that scored the `conv` architecture several times slower
    than this loop when it was measured. Blocks hold at most `rows` pairs, so the decoder's intermediates stay bounded for any n and k.
    """

    def __init__(self, vaes: Sequence[VAE], device: torch.device, rows: int, precision: str = "float32"):
        self.device = device
        self.rows = max(1, int(rows))
        self.dtype = SCORING_PRECISIONS[precision]
        self.vaes = [_on_device(vae, device) for vae in vaes]
        self.likelihoods = [_decoder_likelihood(vae, device) for vae in self.vaes]

    def __len__(self) -> int:
        return len(self.vaes)

    def select(self, positions: Sequence[int]) -> "ModuleKernel":
        """The kernel of the VAEs at `positions` only, sharing these modules (no copies, no device moves)."""
        return _select(self, positions, ("vaes", "likelihoods"))

    @torch.no_grad()
    def distances(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float, distance: Distance) -> torch.Tensor:
        """Distances (n, M, k) of probes `x` (n, input_dim) under noise draws `eps` (k, latent_dim)."""
        n, k = x.shape[0], eps.shape[0]
        out = torch.empty(n, len(self), k, device=self.device)
        corrected = distance.latent_corrected
        for m, vae in enumerate(self.vaes):
            mu, logvar = self._encode(vae, x)
            log_std = 0.5 * logvar + math.log(noise_scale) if corrected else None
            std = torch.exp(0.5 * logvar) * noise_scale
            seen = vae.standardize(x)
            for (p0, p1), (k0, k1) in _blocks(n, k, self.rows):
                z = torch.addcmul(mu[p0:p1, None, :], std[p0:p1, None, :], eps[None, k0:k1, :])
                with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                    logits = vae.decode(z)
                d = distance(logits.float(), seen[p0:p1, None, :], self.likelihoods[m])
                if corrected:
                    d = d + log_density_ratio(z, eps[None, k0:k1, :], log_std[p0:p1, None, :])
                out[p0:p1, m, k0:k1] = d
        return out

    def _encode(self, vae: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) for all probes, encoded `rows` probes at a time (bounded memory)."""
        parts = [vae.encode(x[i : i + self.rows]) for i in range(0, x.shape[0], self.rows)]
        return torch.cat([mu for mu, _ in parts]), torch.cat([logvar for _, logvar in parts])


def _select(kernel, positions: Sequence[int], per_vae: tuple[str, ...]):
    """A shallow copy of `kernel` whose per-VAE lists (the attributes named by `per_vae`) keep `positions` only."""
    sub = copy.copy(kernel)
    for name in per_vae:
        setattr(sub, name, [getattr(kernel, name)[i] for i in positions])
    return sub


def _on_device(vae: VAE, device: torch.device) -> VAE:
    """`vae` in eval mode on `device`: itself when already there, else a copy (the caller's VAE never moves)."""
    if next(vae.parameters()).device != device:
        vae = copy.deepcopy(vae).to(device)
    return vae.eval()

