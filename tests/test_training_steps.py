"""Training steps: the hand-derived MLP step against torch autograd on the same batch and noise."""

import pytest
import torch

from regentree.training.loop import make_training_step
from regentree.training.steps import AutogradTrainingStep, MLPTrainingStep
from regentree.vae.model import VAE, VAEConfig


def _twin_vaes(config, seed=0):
    torch.manual_seed(seed)
    a = VAE(config)
    b = VAE(config)
    b.load_state_dict(a.state_dict())
    return a, b


def _autograd_loss_and_grads(vae, batch, noise_seed):
    """`VAE.forward`'s loss and its autograd gradients, flattened in the order of the MLP step's buffer."""
    torch.manual_seed(noise_seed)
    loss = vae(batch).loss
    vae.zero_grad()
    loss.backward()
    linears = [m for m in [*vae.encoder, *vae.decoder] if isinstance(m, torch.nn.Linear)]
    return loss.item(), torch.cat([t.grad.reshape(-1) for m in linears for t in (m.weight, m.bias)])


@pytest.mark.parametrize("hidden_dims", [(40, 30), (), (24,)])
def test_mlp_step_float32_loss_and_gradients_equal_autograds(hidden_dims):
    config = VAEConfig(input_dim=64, hidden_dims=hidden_dims, latent_dim=3)
    reference, manual = _twin_vaes(config)
    batch = torch.rand(20, 64)
    expected_loss, expected_grads = _autograd_loss_and_grads(reference, batch, noise_seed=7)
    step = MLPTrainingStep(manual, learning_rate=1e-3, precision="float32")
    torch.manual_seed(7)
    loss = step(batch)
    assert loss.item() == pytest.approx(expected_loss, rel=1e-6)
    torch.testing.assert_close(step.flat.grad, expected_grads, rtol=1e-4, atol=1e-6)


def test_mlp_step_bfloat16_gradients_are_close_to_float32s_and_weights_stay_float32():
    config = VAEConfig(input_dim=64, hidden_dims=(40, 30), latent_dim=3)
    reference, manual = _twin_vaes(config)
    batch = torch.rand(32, 64)
    _, expected_grads = _autograd_loss_and_grads(reference, batch, noise_seed=1)
    step = MLPTrainingStep(manual, learning_rate=1e-3, precision="bfloat16")
    torch.manual_seed(1)
    step(batch)
    error = (step.flat.grad - expected_grads).norm() / expected_grads.norm()
    assert 0 < error < 0.02  # bfloat16 products: close, not equal
    assert all(t.dtype == torch.float32 for t in manual.state_dict().values())


def test_mlp_step_updates_the_vaes_own_parameters_as_adam_on_autograd_does():
    config = VAEConfig(input_dim=64, hidden_dims=(40,), latent_dim=3)
    reference, manual = _twin_vaes(config)
    autograd_step = AutogradTrainingStep(reference, learning_rate=1e-2, precision="float32")
    manual_step = MLPTrainingStep(manual, learning_rate=1e-2, precision="float32")
    before = {k: v.clone() for k, v in manual.state_dict().items()}
    for seed in range(3):
        batch = torch.rand(16, 64)
        torch.manual_seed(seed)
        autograd_loss = autograd_step(batch)
        torch.manual_seed(seed)
        manual_loss = manual_step(batch)
        assert manual_loss.item() == pytest.approx(autograd_loss.item(), rel=1e-5)
    state = manual.state_dict()
    assert not torch.equal(state["decoder.0.weight"], before["decoder.0.weight"])
    for name, value in reference.state_dict().items():
        # Adam turns a rounding-level gradient difference into at most a few learning-rate-sized steps
        torch.testing.assert_close(state[name], value, rtol=0, atol=5e-3)
    assert torch.equal(state["encoder.0.weight"], manual_step.flat.data[: 40 * 64].view(40, 64))


def test_training_step_is_chosen_by_architecture():
    mlp = VAE(VAEConfig(input_dim=64, hidden_dims=(8,), latent_dim=2))
    conv = VAE(VAEConfig(input_dim=64, hidden_dims=(4, 4, 8), latent_dim=2, architecture="conv"))
    assert isinstance(make_training_step(mlp, 1e-3, "float32"), MLPTrainingStep)
    assert isinstance(make_training_step(conv, 1e-3, "bfloat16"), AutogradTrainingStep)
