"""The variational auto-encoder: a frozen `VAEConfig`, the architecture registry and the `VAE` module.

`model`: `VAEConfig`, `VAE` with named `VAEOutput`s, the Bernoulli cross-entropy every distance starts from.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "VAEConfig": "regentree.vae.model",
    "VAE": "regentree.vae.model",
    "VAEOutput": "regentree.vae.model",
    "ARCHITECTURES": "regentree.vae.model",
    "bernoulli_cross_entropy": "regentree.vae.model",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["ARCHITECTURES", "VAE", "VAEConfig", "VAEOutput", "bernoulli_cross_entropy"]
