"""One optimisation step of a VAE on one batch: negative ELBO, gradients and an Adam update.

Each architecture names its step (`regentree.vae.architectures`): `MLPTrainingStep` for the paper's `mlp`
architecture, whose gradients are derived by hand, and `AutogradTrainingStep` (torch autograd) for any other. Both draw the
reparameterisation noise from torch's global generator in the same order, so a seed gives the same run
whichever step trains it, up to the rounding of a different summation order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from regentree.vae.likelihood import LOG_VARIANCE_RANGE

if TYPE_CHECKING:
    from regentree.vae.model import VAE


def make_adam(params, learning_rate: float) -> torch.optim.Adam:
    """Adam with its fused kernel where this torch build has one for the parameters' device.

    The fused update is one kernel instead of a dozen element-wise passes per tensor: about a quarter
    of a training step for the paper's MLP on 2 CPU cores. Builds without it get the plain Adam.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=learning_rate)


def autocast_for(precision: str, device: torch.device):
    """The autocast context of a `TrainingConfig.precision` ("float32": a no-op context)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


class AutogradTrainingStep:
    """The step of any architecture: `VAE.forward` under `autocast_for(precision)`, autograd, Adam."""

    def __init__(self, vae: VAE, learning_rate: float, precision: str):
        self.vae = vae
        self.precision = precision
        self.optimizer = make_adam(vae.parameters(), learning_rate)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Update the VAE on `batch` (n, input_dim); returns the batch's mean negative ELBO (detached)."""
        with autocast_for(self.precision, batch.device):
            loss = self.vae(batch).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def _linear_layers(vae: VAE) -> tuple[list[nn.Linear], int]:
    """The Linear layers of an `mlp` VAE, encoder then decoder, and how many belong to the encoder."""
    encoder = [m for m in vae.encoder if isinstance(m, nn.Linear)]
    decoder = [m for m in vae.decoder if isinstance(m, nn.Linear)]
    return encoder + decoder, len(encoder)


class MLPTrainingStep:
    """The step of an `mlp` VAE with hand-derived gradients and all weights in one flat buffer.

    Under autograd and autocast a step of the paper's MLP on one CPU core spent more time casting each
    weight and gradient between float32 and bfloat16 (two dozen small casts) and on per-tensor overhead
    than in its matrix products. Here the float32 weights (Adam's master copy) are views of one flat
    parameter, cast to bfloat16 in one pass per step; each weight gradient is written by its matrix
    product straight into one flat bfloat16 buffer, cast back to the float32 gradient in one pass; and
    Adam updates the single flat parameter. In float32 there is no cast at all. The VAE's own parameters
    become views of the flat weights, so `vae.state_dict()` and evaluation see every update.

    Gradients are those of `VAE.forward`'s loss: the decoder's negative log-likelihood (Bernoulli cross-entropy,
    or the Gaussian NLL of the standardised batch) plus the KL term to N(0, I), each a mean over the batch of
    per-sample sums (tests compare them with autograd's). A Gaussian decoder's log-variance is a second
    parameter of the same Adam, its gradient derived by hand too (0 where the clamp holds it).
    """

    def __init__(self, vae: VAE, learning_rate: float, precision: str):
        self.layers, self.n_encoder = _linear_layers(vae)
        self.standardize, self.likelihood = vae.standardize, vae.likelihood
        self.log_variance = vae.decoder_log_variance if vae.likelihood.real_valued else None
        self.latent_dim = vae.config.latent_dim
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        shapes = [(layer.weight.shape, layer.bias.shape) for layer in self.layers]
        size = sum(w.numel() + b.numel() for w, b in shapes)
        device = self.layers[0].weight.device
        self.flat = nn.Parameter(torch.empty(size, device=device))
        self.flat.grad = torch.zeros(size, device=device)
        low_precision = self.dtype != torch.float32
        self.low_weights = torch.empty(size, dtype=self.dtype, device=device) if low_precision else self.flat.data
        self.low_grads = torch.empty(size, dtype=self.dtype, device=device) if low_precision else self.flat.grad
        master = self._views(self.flat.data, shapes)
        for layer, (weight, bias) in zip(self.layers, master):
            weight.copy_(layer.weight.data)
            bias.copy_(layer.bias.data)
            layer.weight.data, layer.bias.data = weight, bias
        self.weights = self._views(self.low_weights, shapes)
        self.grads = self._views(self.low_grads, shapes)
        variance = [] if self.log_variance is None else [self.log_variance]
        self.optimizer = make_adam([self.flat, *variance], learning_rate)

    @staticmethod
    def _views(buffer: torch.Tensor, shapes) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) views of consecutive slices of a flat buffer, one pair per layer."""
        views, offset = [], 0
        for weight_shape, bias_shape in shapes:
            weight = buffer[offset : offset + weight_shape.numel()].view(weight_shape)
            offset += weight_shape.numel()
            bias = buffer[offset : offset + bias_shape.numel()]
            offset += bias_shape.numel()
            views.append((weight, bias))
        return views

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Update the VAE on `batch` (n, input_dim); returns the batch's mean negative ELBO (detached)."""
        if self.low_weights is not self.flat.data:
            self.low_weights.copy_(self.flat.data)
        n, n_layers, n_encoder, latent = len(batch), len(self.layers), self.n_encoder, self.latent_dim
        x = self.standardize(batch)
        h = x.to(self.dtype)
        inputs = [h]  # the input of every layer, kept for the weight gradients
        for i, (weight, bias) in enumerate(self.weights):
            if i == n_encoder:
                encoded = h.float()
                mu, logvar = encoded[:, :latent], encoded[:, latent:]
                std = torch.exp(0.5 * logvar)
                noise = torch.randn(n, latent, device=batch.device)
                h = torch.addcmul(mu, std, noise).to(self.dtype)
                inputs.append(h)
            h = torch.addmm(bias, h, weight.t())
            if i not in (n_encoder - 1, n_layers - 1):
                h = h.relu_()
                inputs.append(h)
        logits = h.float()
        variance = logvar.exp()
        log_variance = None if self.log_variance is None else self.log_variance.detach().clamp(*LOG_VARIANCE_RANGE)
        recon = self.likelihood.summed_negative_log_likelihood(logits, x, log_variance)
        loss = (recon - 0.5 * (1 + logvar - mu.pow(2) - variance).sum()) / n
        if self.log_variance is not None:
            unclamped = (self.log_variance >= LOG_VARIANCE_RANGE[0]) & (self.log_variance <= LOG_VARIANCE_RANGE[1])
            gradient = self.likelihood.log_variance_gradient(logits, x, log_variance)
            self.log_variance.grad = gradient.mul_(unclamped).mul_(1.0 / n)

        grad = self.likelihood.output_gradient(logits, x, log_variance).mul_(1.0 / n).to(self.dtype)
        for i in range(n_layers - 1, -1, -1):
            if i == n_encoder - 1:  # grad holds dLoss/dz: through the reparameterisation, plus the KL term
                grad_z = grad.float()
                grad_mu = grad_z + mu / n
                grad_logvar = grad_z * noise * 0.5 * std + 0.5 * (variance - 1) / n
                grad = torch.cat([grad_mu, grad_logvar], dim=1).to(self.dtype)
            grad_weight, grad_bias = self.grads[i]
            torch.mm(grad.t(), inputs[i], out=grad_weight)
            torch.sum(grad, 0, out=grad_bias)
            if i > 0:
                grad = torch.mm(grad, self.weights[i][0])
                if i != n_encoder:  # the input of layer i came out of a ReLU (z, the decoder's input, did not)
                    grad = torch.ops.aten.threshold_backward(grad, inputs[i], 0)
        if self.low_grads is not self.flat.grad:
            self.flat.grad.copy_(self.low_grads)
        self.optimizer.step()
        return loss.detach()

