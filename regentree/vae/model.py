"""Variational auto-encoders: a frozen config, an architecture registry and a VAE with named outputs.

The defaults are the paper's: two hidden layers of 500 units, a 15-dimensional latent, a Bernoulli
(cross-entropy) decoder and an N(0, I) prior. An architecture is an entry of the registry
`regentree.vae.architectures.ARCHITECTURES` (its encoder/decoder builders, scoring kernel and training step),
so another architecture slots in without touching training or scoring: `conv` (convolutions, for square
images) is one. The decoder likelihood is an entry of `regentree.vae.likelihood.LIKELIHOODS`: a "gaussian"
VAE models real-valued features, standardised by the training mean and standard deviation it holds as
buffers, with a learned per-feature variance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from regentree.errors import ConfigError
from regentree.vae.architectures import ARCHITECTURES
from regentree.vae.likelihood import (
    LIKELIHOODS,
    LOG_VARIANCE_RANGE,
    DecoderLikelihood,
    bernoulli_cross_entropy,
    log_density_ratio,
    standardized,
)

__all__ = ["ARCHITECTURES", "VAE", "VAEConfig", "VAEOutput", "bernoulli_cross_entropy", "log_density_ratio"]


@dataclass(frozen=True)
class VAEConfig:
    """Shape of one VAE.

    Parameters
    ----------
    input_dim : int
        Number of pixels of a flattened image.
    hidden_dims : tuple of int
        Widths of the encoder's hidden layers; the decoder mirrors them. For the `conv` architecture:
        the channels of its two convolutions, then the width of its dense layer.
    latent_dim : int
        Dimension of the latent code z.
    architecture : str
        Key of `ARCHITECTURES`: "mlp" (the paper's) or "conv" (square images whose side is a multiple of 4).
    likelihood : str
        Key of `LIKELIHOODS`: "bernoulli" (the paper's, pixels in [0, 1]) or "gaussian" (real-valued features).
    """

    input_dim: int
    hidden_dims: tuple[int, ...] = (500, 500)
    latent_dim: int = 15
    architecture: str = "mlp"
    likelihood: str = "bernoulli"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if not isinstance(self.input_dim, int) or self.input_dim < 1:
            raise ConfigError(f"VAEConfig.input_dim must be a positive integer, got {self.input_dim!r}")
        if any(h < 1 for h in self.hidden_dims):
            raise ConfigError(f"VAEConfig.hidden_dims must be positive, got {self.hidden_dims!r}")
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ConfigError(f"VAEConfig.latent_dim must be a positive integer, got {self.latent_dim!r}")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"VAEConfig.architecture {self.architecture!r} is unknown; choose one of {sorted(ARCHITECTURES)}"
            )
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(
                f"VAEConfig.likelihood {self.likelihood!r} is unknown; choose one of {sorted(LIKELIHOODS)}"
            )
        ARCHITECTURES[self.architecture].check_config(self)

    def to_dict(self) -> dict:
        """JSON-able dict of the config; the default Bernoulli likelihood is left out, so the configs (and model
        folders) of Bernoulli VAEs read as they did before the likelihood was a choice."""
        data = asdict(self)
        data["hidden_dims"] = list(self.hidden_dims)
        if self.likelihood == "bernoulli":
            del data["likelihood"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "VAEConfig":
        """Inverse of `to_dict`; unknown or missing keys raise `ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"VAE config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"VAE config has unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"VAE config is incomplete: {exc}") from None


@dataclass(frozen=True)
class VAEOutput:
    """Named outputs of `VAE.forward`; losses are means over the batch of per-sample sums.

    `recon_logits` is the decoder's output: Bernoulli logits, or the Gaussian mean of the standardised input.
    """

    loss: torch.Tensor
    recon_loss: torch.Tensor
    reg_loss: torch.Tensor
    recon_logits: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAE(nn.Module):
    """A VAE with an N(0, I) prior and the decoder likelihood of its config; `forward` returns a `VAEOutput`.

    A real-valued likelihood ("gaussian") adds the buffers `input_shift` and `input_scale` (the training mean
    and standard deviation of each feature, set by `set_standardization`), through which every input is
    standardised before it is encoded or scored, and the parameter `decoder_log_variance` (one learned
    log-variance per standardised feature, clamped to `LOG_VARIANCE_RANGE`). All three are saved with the
    weights, so a VAE restores itself whole.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        architecture = ARCHITECTURES[config.architecture]
        self.encoder = architecture.build_encoder(config)
        self.decoder = architecture.build_decoder(config)
        if LIKELIHOODS[config.likelihood].real_valued:
            self.register_buffer("input_shift", torch.zeros(config.input_dim))
            self.register_buffer("input_scale", torch.ones(config.input_dim))
            self.decoder_log_variance = nn.Parameter(torch.zeros(config.input_dim))

    @property
    def likelihood(self):
        """The `Likelihood` entry of the config."""
        return LIKELIHOODS[self.config.likelihood]

    def set_standardization(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Set the per-feature training mean `shift` and standard deviation `scale` (real-valued likelihoods)."""
        if not self.likelihood.real_valued:
            raise ConfigError(f"a {self.config.likelihood} VAE takes no input standardisation")
        self.input_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        self.input_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    @torch.no_grad()
    def start_decoder_variance(self, x: torch.Tensor) -> None:
        """Start the learned log-variance at that of a decoder ignoring z: each standardised feature's variance
        over training data `x` (n, input_dim), clamped. Started at 0 (the whole data's variance) instead, it had
        moved by about 0.1 after 100 epochs on iris, whose classes spread far less than the whole data."""
        variance = self.standardize(x).var(dim=0, unbiased=False)
        self.decoder_log_variance.copy_(variance.clamp_min(1e-12).log().clamp(*LOG_VARIANCE_RANGE))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Input `x` (..., input_dim) as the encoder and the likelihood see it: standardised for real-valued
        likelihoods, unchanged for pixels."""
        return standardized(x, (self.input_shift, self.input_scale) if self.likelihood.real_valued else None)

    def decoder_likelihood(self) -> DecoderLikelihood:
        """The likelihood bound to this VAE's decoder parameters (the clamped log-variance, if it has one)."""
        if not self.likelihood.real_valued:
            return DecoderLikelihood(self.likelihood)
        return DecoderLikelihood(self.likelihood, self.decoder_log_variance.clamp(*LOG_VARIANCE_RANGE))

    def output_mean(self, output: torch.Tensor) -> torch.Tensor:
        """The mean of x, in input units, that a decoder output predicts (pixel means for Bernoulli logits)."""
        mean = self.likelihood.mean(output)
        if not self.likelihood.real_valued:
            return mean
        return mean * self.input_scale + self.input_shift

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x), each of shape (..., latent_dim)."""
        mu, logvar = self.encoder(self.standardize(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder output of shape (..., input_dim): Bernoulli logits, or the Gaussian mean (standardised units)."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor, noise_scale: float = 1.0
    ) -> torch.Tensor:
        """z = mu + noise_scale * std * eps; `noise_scale` is sigma (sqrt of the paper's sigma^2)."""
        return mu + noise_scale * torch.exp(0.5 * logvar) * eps

    def regenerate(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float = 1.0) -> torch.Tensor:
        """Re-generation decoder outputs of each probe for each noise draw.

        Parameters
        ----------
        x : Tensor of shape (n_probes, input_dim)
        eps : Tensor of shape (n_probes, K, latent_dim)

        Returns
        -------
        Tensor of shape (n_probes, K, input_dim)
        """
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu.unsqueeze(1), logvar.unsqueeze(1), eps, noise_scale)
        return self.decode(z)

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """ELBO terms for a batch `x` of shape (n, input_dim), in float32 even when the layers run in bfloat16."""
        x = self.standardize(x)
        mu, logvar = (t.float() for t in self.encoder(x).chunk(2, dim=-1))
        z = self.reparameterize(mu, logvar, torch.randn_like(mu))
        logits = self.decode(z).float()
        recon = self.decoder_likelihood().negative_log_likelihood(logits, x).mean()
        reg = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()
        return VAEOutput(recon + reg, recon, reg, logits, z, mu, logvar)
