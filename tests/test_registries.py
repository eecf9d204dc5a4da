"""Architecture and distance registries: code asks the entry, never the name; unknown names fail in one line."""

from dataclasses import replace

import pytest
import torch

from regentree.errors import ConfigError
from regentree.scoring.distances import DISTANCES, distance_named
from regentree.scoring.kernels import MLPKernel, ModuleKernel
from regentree.scoring.regeneration import make_kernel
from regentree.training.loop import make_training_step
from regentree.training.steps import AutogradTrainingStep
from regentree.vae.architectures import ARCHITECTURES, architecture_named
from regentree.vae.model import VAE, VAEConfig


@pytest.mark.parametrize("lookup, name", [(architecture_named, "architecture"), (distance_named, "distance")])
def test_unknown_name_is_a_one_line_config_error_listing_the_choices(lookup, name):
    with pytest.raises(ConfigError) as caught:
        lookup("nope")
    message = str(caught.value)
    assert "\n" not in message and f"{name}='nope'" in message
    registry = ARCHITECTURES if name == "architecture" else DISTANCES
    assert all(repr(choice) in message for choice in registry)


def test_distance_entries_say_what_the_kernels_need():
    assert [d.name for d in DISTANCES.values() if d.latent_corrected] == ["neg_log_weight"]
    assert {d.name for d in DISTANCES.values() if d.bernoulli} == {"cross_entropy", "neg_log_weight"}
    logits, x = torch.zeros(2, 4), torch.ones(2, 4)
    torch.testing.assert_close(DISTANCES["mse"](logits, x), torch.full((2,), 0.25))


def test_a_new_architecture_entry_is_used_by_kernel_step_and_stacking(monkeypatch):
    entry = replace(ARCHITECTURES["mlp"], name="mlp_generic", kernel=ModuleKernel,
                    training_step=AutogradTrainingStep, stackable=False)
    monkeypatch.setitem(ARCHITECTURES, "mlp_generic", entry)
    vae = VAE(VAEConfig(input_dim=16, hidden_dims=(8,), latent_dim=2, architecture="mlp_generic"))
    assert isinstance(make_kernel([vae], torch.device("cpu"), rows=8), ModuleKernel)
    assert isinstance(make_training_step(vae, 1e-3, "float32"), AutogradTrainingStep)
    plain = VAE(VAEConfig(input_dim=16, hidden_dims=(8,), latent_dim=2))
    assert isinstance(make_kernel([plain], torch.device("cpu"), rows=8), MLPKernel)


def test_conv_entry_checks_its_config_and_is_not_stackable():
    assert not architecture_named("conv").stackable and architecture_named("mlp").stackable
    with pytest.raises(ConfigError, match="multiple of 4"):
        VAEConfig(input_dim=63, hidden_dims=(4, 8, 16), latent_dim=2, architecture="conv")
