"""The architecture registry: everything that differs between VAE architectures, as one `Architecture` entry.

An entry names the encoder and decoder builders (`regentree.vae.networks`), the config check, the scoring
kernel (`regentree.scoring.kernels`), the training step (`regentree.training.steps`) and whether the VAEs
are the plain Linear/ReLU stacks that `regentree.training.stacked` trains together. Code asks the entry
instead of testing the architecture's name, so a new architecture is one new entry. This is the one module
of `vae/` that imports kernels and steps; they import only `regentree.vae.likelihood`, so there is no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from torch import nn

from regentree.constraints import check_choice
from regentree.scoring.kernels import MLPKernel, ModuleKernel
from regentree.training.steps import AutogradTrainingStep, MLPTrainingStep
from regentree.vae.networks import (
    check_conv_config,
    check_mlp_config,
    conv_decoder,
    conv_encoder,
    mlp_decoder,
    mlp_encoder,
)

if TYPE_CHECKING:
    from regentree.vae.model import VAEConfig

Builder = Callable[["VAEConfig"], nn.Module]


@dataclass(frozen=True)
class Architecture:
    """One registered VAE architecture.

    Attributes
    ----------
    name : str
        Its key in `ARCHITECTURES` (`VAEConfig.architecture`).
    build_encoder, build_decoder : callable
        `VAEConfig` -> the encoder (x -> mu and log-variance) and the decoder (z -> Bernoulli logits).
    check_config : callable
        `VAEConfig` -> None; raises `ConfigError` when the config cannot build this architecture.
    kernel : type
        Scoring kernel class, called as ``kernel(vaes, device, rows, precision)``.
    training_step : type
        Training step class, called as ``training_step(vae, learning_rate, precision)``.
    stackable : bool
        Whether encoder and decoder are plain Linear/ReLU stacks: `train_vaes_stacked` can train several
        at once, and `hidden_dims` are layer widths.
    """

    name: str
    build_encoder: Builder
    build_decoder: Builder
    check_config: Callable[["VAEConfig"], None]
    kernel: type
    training_step: type
    stackable: bool


ARCHITECTURES: dict[str, Architecture] = {
    entry.name: entry
    for entry in (
        Architecture("mlp", mlp_encoder, mlp_decoder, check_mlp_config, MLPKernel, MLPTrainingStep, stackable=True),
        Architecture("conv", conv_encoder, conv_decoder, check_conv_config, ModuleKernel, AutogradTrainingStep,
                     stackable=False),
    )
}
"""Architecture name -> entry: "mlp" (the paper's), "conv" (square images whose side is a multiple of 4)."""


def architecture_named(name: str) -> Architecture:
    """The registered `Architecture` called `name`; a one-line `ConfigError` listing the choices otherwise."""
    check_choice("architecture", name, ARCHITECTURES)
    return ARCHITECTURES[name]
