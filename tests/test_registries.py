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
    assert {d.name for d in DISTANCES.values() if d.negative_log_likelihood} == {"cross_entropy", "neg_log_weight"}
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


def test_scoring_config_is_built_once_from_the_estimator_parameters_and_names_its_views():
    from regentree.estimators.ensemble import SHARED_SCORING
    from regentree.estimators.flat import FlatRegenClassifier
    from regentree.rejection.novelty import NoveltyReference
    from regentree.scoring.config import ScoringConfig

    model = FlatRegenClassifier(n_regenerations=7, noise_variance=1, distance="mse", random_state=3, device="cpu")
    config = model._scoring_config()
    assert config == ScoringConfig(n_regenerations=7, noise_variance=1.0, distance="mse", random_state=3)
    reference_setup = tuple(NoveltyReference.under(config).setup)
    assert reference_setup == ScoringConfig.distortion_fields and SHARED_SCORING == ScoringConfig.pooling_fields
    assert "random_state" in reference_setup and "kl_estimator" in SHARED_SCORING
    with pytest.raises(AttributeError):
        config.distance = "cross_entropy"


def test_scoring_config_distances_equal_the_loose_keyword_call():
    import numpy as np

    from regentree.scoring.config import ScoringConfig
    from regentree.scoring.regeneration import regenerate_distances

    torch.manual_seed(0)
    vaes = [VAE(VAEConfig(input_dim=16, hidden_dims=(8,), latent_dim=2)) for _ in range(2)]
    X = np.random.default_rng(0).random((4, 16), dtype=np.float32)
    config = ScoringConfig(n_regenerations=5, noise_variance=0.5, random_state=2, scoring_precision="float32")
    expected = regenerate_distances(vaes, X, n_regenerations=5, noise_variance=0.5, seed=2)
    np.testing.assert_allclose(config.distances(vaes, X), expected, rtol=1e-5)


def test_routing_rules_are_built_from_the_estimator_parameters_through_the_registry(monkeypatch):
    from types import SimpleNamespace

    from regentree.estimators.tree import TreeRegenClassifier
    from regentree.tree.routing import ROUTING_RULES, SoftRouting

    params = SimpleNamespace(decision="median", flat_below=3, beam_width=4)
    hard, soft = ROUTING_RULES["hard"].from_params(params), ROUTING_RULES["soft"].from_params(params)
    assert (hard.statistic, hard.flat_below) == ("median", 3)
    assert (soft.statistic, soft.beam_width) == ("median", 4)
    monkeypatch.setitem(ROUTING_RULES, "beam", SoftRouting)
    rule = TreeRegenClassifier(routing="beam", beam_width=5).routing_rule()
    assert isinstance(rule, SoftRouting) and rule.beam_width == 5
