"""Variational auto-encoders: a frozen config, an architecture registry and a VAE with named outputs.

The defaults are the paper's: two hidden layers of 500 units, a 15-dimensional latent, a Bernoulli
(cross-entropy) decoder and an N(0, I) prior. An architecture is an entry of the registry
`regentree.vae.architectures.ARCHITECTURES` (its encoder/decoder builders, scoring kernel and training step),
so another architecture slots in without touching training or scoring: `conv` (convolutions, for square
images) is one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from regentree.errors import ConfigError
from regentree.vae.architectures import ARCHITECTURES
from regentree.vae.likelihood import bernoulli_cross_entropy, log_density_ratio

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
    """

    input_dim: int
    hidden_dims: tuple[int, ...] = (500, 500)
    latent_dim: int = 15
    architecture: str = "mlp"

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
        ARCHITECTURES[self.architecture].check_config(self)

    def to_dict(self) -> dict:
        """JSON-able dict of the config."""
        data = asdict(self)
        data["hidden_dims"] = list(self.hidden_dims)
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
    """Named outputs of `VAE.forward`; losses are means over the batch of per-sample sums."""

    loss: torch.Tensor
    recon_loss: torch.Tensor
    reg_loss: torch.Tensor
    recon_logits: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class VAE(nn.Module):
    """A VAE with a Bernoulli decoder and N(0, I) prior; `forward` returns a `VAEOutput`."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        architecture = ARCHITECTURES[config.architecture]
        self.encoder = architecture.build_encoder(config)
        self.decoder = architecture.build_decoder(config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x), each of shape (..., latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of shape (..., input_dim)."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor, noise_scale: float = 1.0
    ) -> torch.Tensor:
        """z = mu + noise_scale * std * eps; `noise_scale` is sigma (sqrt of the paper's sigma^2)."""
        return mu + noise_scale * torch.exp(0.5 * logvar) * eps

    def regenerate(self, x: torch.Tensor, eps: torch.Tensor, noise_scale: float = 1.0) -> torch.Tensor:
        """Re-generation logits of each probe for each noise draw.

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
        mu, logvar = (t.float() for t in self.encode(x))
        z = self.reparameterize(mu, logvar, torch.randn_like(mu))
        logits = self.decode(z).float()
        recon = bernoulli_cross_entropy(logits, x).mean()
        reg = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean()
        return VAEOutput(recon + reg, recon, reg, logits, z, mu, logvar)
