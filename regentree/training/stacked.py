"""Training of the independent VAEs of a model as one stacked model: batched matrix products, one optimizer.

Every `mlp` VAE of a list of tasks becomes one slice of stacked weights (M, in, out); a step draws one
batch per VAE from that VAE's own data, runs all M forward and backward passes as batched products
(`torch.baddbmm`), and takes one Adam step, which is exactly M independent Adam steps because Adam is
element-wise and the VAEs share no parameter. Each VAE keeps its own validation split, early stopping
state and best weights; a stopped VAE leaves the stack, so the rest run faster.

The estimators use it on CUDA devices, where one stacked model keeps the GPU busy that M small models
cannot; on 2 CPU cores benchmarks/performance.py measured it no faster than `train_vae` one VAE after
the other (each of those products is already large enough for the cores).

Differences from `regentree.training.loop.train_vae` (whose result it does not reproduce bit for bit): an
epoch is one pass over the largest class (smaller classes cycle their own shuffles), and the
reparameterisation noise comes from one generator seeded by all task seeds. Initial weights and
validation splits are those of `train_vae`; the same tasks give the same weights.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from regentree.errors import ConfigError
from regentree.progress import ProgressCallback, report
from regentree.backends.devices import resolve_device
from regentree.training.loop import (
    VALIDATION_BATCH,
    TrainedVAE,
    TrainingTask,
    check_finite_loss,
    check_task,
    clear_tiny_moments,
    flushing_denormals,
    initial_vae,
    learning_rate_at,
    split_validation,
)
from regentree.training.steps import autocast_for, make_adam
from regentree.vae.architectures import ARCHITECTURES
from regentree.vae.likelihood import LOG_VARIANCE_RANGE
from regentree.vae.model import VAE


def _linear_names(module: nn.Sequential) -> list[str]:
    return [name for name, m in module.named_children() if isinstance(m, nn.Linear)]


class _Stack:
    """Stacked weights of the active VAEs: per layer W (M, in, out) and b (M, 1, out), with Adam state.

    A real-valued likelihood adds the decoders' log-variances (M, 1, D) as the last parameter, and the input
    standardisations (`standardization`: shift and scale, each (M, 1, D)), which no step changes.
    """

    def __init__(self, vaes: list[VAE], learning_rate: float, device: torch.device):
        self.n_encoder = len(_linear_names(vaes[0].encoder))
        self.n_layers = self.n_encoder + len(_linear_names(vaes[0].decoder))
        self.latent_dim = vaes[0].config.latent_dim
        self.likelihood = vaes[0].likelihood
        layers = [[m for m in v.encoder if isinstance(m, nn.Linear)] + [m for m in v.decoder if isinstance(m, nn.Linear)]
                  for v in vaes]
        self.params = []
        for i in range(len(layers[0])):
            self.params.append(torch.stack([lay[i].weight.detach().t() for lay in layers]).to(device).requires_grad_())
            self.params.append(torch.stack([lay[i].bias.detach()[None] for lay in layers]).to(device).requires_grad_())
        self.standardization = None
        if self.likelihood.real_valued:
            self.params.append(torch.stack([v.decoder_log_variance.detach()[None] for v in vaes]).to(device).requires_grad_())
            self.standardization = [torch.stack([getattr(v, name)[None] for v in vaes]).to(device)
                                    for name in ("input_shift", "input_scale")]
        self.learning_rate = learning_rate
        self.optimizer = make_adam(self.params, learning_rate)

    def keep(self, rows: np.ndarray) -> None:
        """Drop every VAE but `rows` (positions in the current stack), carrying their Adam state over."""
        index = torch.as_tensor(rows, device=self.params[0].device)
        old_state = [self.optimizer.state.get(p, {}) for p in self.params]
        self.params = [p.detach()[index].clone().requires_grad_() for p in self.params]
        if self.standardization is not None:
            self.standardization = [t[index] for t in self.standardization]
        self.optimizer = make_adam(self.params, self.learning_rate)
        for p, state in zip(self.params, old_state):
            if state:
                self.optimizer.state[p] = {
                    "step": state["step"].clone(),
                    "exp_avg": state["exp_avg"][index].clone(),
                    "exp_avg_sq": state["exp_avg_sq"][index].clone(),
                }

    def loss(self, x: torch.Tensor, noise: torch.Tensor, rows: Optional[slice] = None) -> torch.Tensor:
        """Per-VAE negative ELBO (M,) of batches `x` (M, B, D) with standard-normal `noise` (M, B, latent)."""
        params = self.params if rows is None else [p[rows] for p in self.params]
        n_layers = self.n_layers
        log_variance = None
        if self.standardization is not None:
            shift, scale = (t if rows is None else t[rows] for t in self.standardization)
            x = (x - shift) / scale
            log_variance = params[-1].clamp(*LOG_VARIANCE_RANGE)
        h = x
        for i in range(n_layers):
            h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
            if i == self.n_encoder - 1:
                mu, logvar = h.float().chunk(2, dim=-1)  # float32 even when the products run in bfloat16
                h = mu + torch.exp(0.5 * logvar) * noise
            elif i < n_layers - 1:
                h = F.relu(h)
        h = h.float()
        recon = self.likelihood.negative_log_likelihood(h, x, log_variance).mean(-1)
        reg = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)).mean(-1)
        return recon + reg

    def state_dict(self, row: int, template: VAE) -> dict[str, torch.Tensor]:
        """The `VAE.state_dict` of the VAE at position `row`."""
        names = [f"encoder.{n}" for n in _linear_names(template.encoder)]
        names += [f"decoder.{n}" for n in _linear_names(template.decoder)]
        state = {}
        for i, name in enumerate(names):
            state[f"{name}.weight"] = self.params[2 * i][row].detach().t().contiguous().cpu().clone()
            state[f"{name}.bias"] = self.params[2 * i + 1][row, 0].detach().cpu().clone()
        if self.standardization is not None:
            state["decoder_log_variance"] = self.params[-1][row, 0].detach().cpu().clone()
            state["input_shift"], state["input_scale"] = (t[row, 0].cpu().clone() for t in self.standardization)
        return state


def train_vaes_stacked(
    tasks: Sequence[TrainingTask], progress: Optional[ProgressCallback] = None, device: str = "cpu"
) -> list[TrainedVAE]:
    """Train the VAEs of `tasks` (one `mlp` config and one training config) together; results in task order.

    Parameters
    ----------
    tasks : sequence of TrainingTask
    progress : callable, optional
        Receives ("training VAEs", finished VAEs, total) after each epoch.
    device : str

    Returns
    -------
    list of TrainedVAE
        `seconds` of each is the stacked run's wall time shared equally.
    """
    if not tasks:
        return []
    vae_config, cfg = tasks[0].vae_config, tasks[0].training_config
    if any(t.vae_config != vae_config or t.training_config != cfg for t in tasks):
        raise ConfigError("stacked training needs tasks of one VAE config and one training config")
    if not ARCHITECTURES[vae_config.architecture].stackable:
        raise ConfigError(f"stacked training supports the 'mlp' architecture, not {vae_config.architecture!r}")
    for task in tasks:
        check_task(task)
    torch_device = resolve_device(device)
    started = time.perf_counter()
    splits = [split_validation(len(t.X), cfg.validation_fraction, t.seed) for t in tasks]
    vaes = []
    with torch.random.fork_rng(devices=[]):
        for task in tasks:
            torch.manual_seed(task.seed)
            vaes.append(initial_vae(task))
    train = [torch.from_numpy(np.ascontiguousarray(t.X[tr])).to(torch_device) for t, (tr, _) in zip(tasks, splits)]
    val = [torch.from_numpy(np.ascontiguousarray(t.X[va])).to(torch_device) for t, (_, va) in zip(tasks, splits)]
    shufflers = [np.random.default_rng(t.seed) for t in tasks]
    orders = [np.empty(0, dtype=np.int64) for _ in tasks]
    seed = int(np.random.SeedSequence([t.seed for t in tasks]).generate_state(1)[0])
    noise_gen = torch.Generator(device=torch_device).manual_seed(seed)
    stack = _Stack(vaes, cfg.learning_rate, torch_device)
    active = list(range(len(tasks)))
    best = [(float("inf"), 0, None) for _ in tasks]
    history: list[list[dict]] = [[] for _ in tasks]
    epochs_run = [0] * len(tasks)
    steps = int(np.ceil(max(len(t) for t in train) / cfg.batch_size))
    batch = [min(cfg.batch_size, len(t)) for t in train]
    with flushing_denormals():
        for epoch in range(1, cfg.epochs + 1):
            for group in stack.optimizer.param_groups:
                group["lr"] = learning_rate_at(cfg, epoch)
            running = torch.zeros(len(active), device=torch_device)
            b = min(batch[m] for m in active)
            for _ in range(steps):
                picks = []
                for m in active:
                    if len(orders[m]) < b:
                        orders[m] = np.concatenate([orders[m], shufflers[m].permutation(len(train[m]))])
                    picks.append(train[m][torch.as_tensor(orders[m][:b], device=torch_device)])
                    orders[m] = orders[m][b:]
                x = torch.stack(picks)
                noise = torch.randn(len(active), b, vae_config.latent_dim, generator=noise_gen, device=torch_device)
                with autocast_for(cfg.precision, torch_device):
                    losses = stack.loss(x, noise)
                stack.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                stack.optimizer.step()
                running += losses.detach()
            clear_tiny_moments(stack.optimizer)
            train_loss = (running / steps).tolist()
            stopped = []
            with torch.no_grad(), autocast_for(cfg.precision, torch_device):
                for row, m in enumerate(active):
                    val_loss = _validation_loss(stack, row, val[m], noise_gen) if len(val[m]) else train_loss[row]
                    check_finite_loss(train_loss[row] + val_loss, epoch, tasks[m].key, cfg)
                    history[m].append({"epoch": epoch, "train_loss": train_loss[row], "val_loss": val_loss})
                    epochs_run[m] = epoch
                    if val_loss < best[m][0]:
                        best[m] = (val_loss, epoch, stack.state_dict(row, vaes[m]))
                    elif cfg.patience and epoch - best[m][1] >= cfg.patience:
                        stopped.append(row)
            if stopped:
                keep = np.array([row for row in range(len(active)) if row not in stopped], dtype=np.int64)
                active = [active[row] for row in keep]
                if active:
                    stack.keep(keep)
            report(progress, "training VAEs", len(tasks) - len(active), len(tasks))
            if not active:
                break
    seconds = time.perf_counter() - started
    return [
        TrainedVAE(key=t.key, state_dict=best[m][2], best_epoch=best[m][1], epochs_run=epochs_run[m],
                   history=history[m], validation_index=splits[m][1], seconds=seconds / len(tasks))
        for m, t in enumerate(tasks)
    ]


def _validation_loss(stack: _Stack, row: int, data: torch.Tensor, generator: torch.Generator) -> float:
    """Mean negative ELBO of one VAE of the stack over `data` (n, D)."""
    total = 0.0
    for i in range(0, len(data), VALIDATION_BATCH):
        x = data[i : i + VALIDATION_BATCH][None]
        noise = torch.randn(1, x.shape[1], stack.latent_dim, generator=generator, device=x.device)
        total += stack.loss(x, noise, slice(row, row + 1)).item() * x.shape[1]
    return total / len(data)
