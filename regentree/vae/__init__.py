"""The variational auto-encoder: a frozen `VAEConfig`, the architecture registry and the `VAE` module.

`architectures`: the `Architecture` registry (builders, scoring kernel, training step, stackable);
`networks`: the encoder/decoder builders; `likelihood`: the decoder likelihoods (`LIKELIHOODS`: Bernoulli,
Gaussian) and the log-density ratio; `model`: `VAEConfig`, `VAE` with named `VAEOutput`s.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "VAEConfig": "regentree.vae.model",
    "VAE": "regentree.vae.model",
    "VAEOutput": "regentree.vae.model",
    "ARCHITECTURES": "regentree.vae.architectures",
    "Architecture": "regentree.vae.architectures",
    "bernoulli_cross_entropy": "regentree.vae.model",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["ARCHITECTURES", "Architecture", "VAE", "VAEConfig", "VAEOutput", "bernoulli_cross_entropy"]
