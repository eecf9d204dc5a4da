"""Training of one VAE on one array: seeded, with a validation split and early stopping.

A `TrainingTask` is self-contained (config, data, seed), so the VAEs of a model are independent
tasks that any backend (in-process, worker processes, a Dask cluster) can run, and the same seed
gives the same weights wherever the task runs.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Optional

import numpy as np
import torch

from regentree.backends.devices import resolve_device
from regentree.errors import ConfigError, InvalidInputError, TrainingDivergedError
from regentree.progress import ProgressCallback, report
from regentree.training.steps import autocast_for
from regentree.vae.architectures import ARCHITECTURES
from regentree.vae.model import VAE, VAEConfig


LEARNING_RATE_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16")


def make_training_step(vae: VAE, learning_rate: float, precision: str):
    """The training step its architecture registers for `vae` (hand-derived for `mlp`, autograd otherwise)."""
    return ARCHITECTURES[vae.config.architecture].training_step(vae, learning_rate, precision)


def learning_rate_at(config: "TrainingConfig", epoch: int) -> float:
    """Learning rate of 1-based `epoch` under the config's schedule."""
    if config.learning_rate_schedule == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / config.epochs))
    return config.learning_rate


@dataclass(frozen=True)
class TrainingConfig:
    """How a VAE is trained.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training data.
    batch_size : int
    learning_rate : float
        Adam's learning rate (the paper: 1e-3).
    validation_fraction : float
        Share of the data held out for early stopping and for the novelty reference distortions.
    patience : int
        Epochs without validation improvement before stopping; 0 disables early stopping.
    learning_rate_schedule : {"constant", "cosine"}
        "cosine" anneals the learning rate from `learning_rate` towards 0 over `epochs` (one step per
        epoch): a short run then converges about as far as a long constant-rate one.
    min_samples : int
        Fewest samples a class (or tree node) may have: 2, the fewest that spread at all (a class of a few
        images leans on the base VAE that "auto" trains for small classes).
    precision : {"float32", "bfloat16"}
        "bfloat16" runs the layers' matrix products in bfloat16 (weights, Adam state and the loss stay
        float32; see `regentree.training.steps`): faster where the CPU has AMX or AVX-512 BF16 units, or
        on a GPU; elsewhere it may be slower.
    """

    epochs: int = 100
    batch_size: int = 128
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    patience: int = 10
    min_samples: int = 2
    learning_rate_schedule: str = "constant"
    precision: str = "float32"

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "validation_fraction": 0.0 <= self.validation_fraction < 1.0,
            "patience": self.patience >= 0,
            "min_samples": self.min_samples >= 2,
            "learning_rate_schedule": self.learning_rate_schedule in LEARNING_RATE_SCHEDULES,
            "precision": self.precision in PRECISIONS,
        }
        choices_of = {"learning_rate_schedule": LEARNING_RATE_SCHEDULES, "precision": PRECISIONS}
        for name, ok in checks.items():
            if not ok:
                choices = f"; choose one of {list(choices_of[name])}" if name in choices_of else ""
                raise ConfigError(f"TrainingConfig.{name} has an invalid value {getattr(self, name)!r}{choices}")

    def to_dict(self) -> dict:
        """JSON-able dict of the config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        """Inverse of `to_dict`; unknown keys raise `ConfigError`."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"training config has unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class TrainingTask:
    """One unit of training work: fit a VAE of `vae_config` to `X` with `seed`.

    `initial_state`, when given, is the state dict the VAE starts from instead of a random
    initialisation (fine-tuning a base VAE pre-trained on more, possibly unlabelled, images).
    `standardization`, for a VAE of real-valued features (a Gaussian decoder), is the (shift, scale) pair of
    arrays (input_dim,) it standardises its input with (`VAE.set_standardization`): the model's, fitted on all
    its training data, so that every VAE of the model sees a probe alike.
    """

    key: str
    vae_config: VAEConfig
    training_config: TrainingConfig
    X: np.ndarray
    seed: int
    initial_state: Optional[dict] = None
    standardization: Optional[tuple[np.ndarray, np.ndarray]] = None


@dataclass
class TrainedVAE:
    """Result of a task: weights plus what the estimator records about the run."""

    key: str
    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    validation_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    seconds: float = 0.0


TINY_MOMENT = 1e-30
"""Adam moments below this are set to 0 once an epoch (see `clear_tiny_moments`)."""


def clear_tiny_moments(optimizer: torch.optim.Optimizer) -> None:
    """Set Adam's first and second moments below `TINY_MOMENT` in magnitude to exactly 0.

    Weights whose gradients are (nearly) always 0, such as those of always-black border pixels,
    leave moments that decay geometrically into the float32 denormal range, where CPU arithmetic is
    many times slower: by epoch 20 of the paper's MNIST VAE a third of the first moments were denormal
    and epochs had slowed markedly (docs/how-it-works.md). A first moment this small moves a weight by
    less than 1e-22 of the learning rate, and a second moment this small changes Adam's denominator
    sqrt(v) + 1e-8 by less than 1e-7 of itself, so clearing them once an epoch changes nothing else.
    """
    for state in optimizer.state.values():
        for name in ("exp_avg", "exp_avg_sq"):
            moment = state.get(name)
            if moment is not None:
                moment.masked_fill_(moment.abs() < TINY_MOMENT, 0.0)


@contextmanager
def flushing_denormals():
    """Flush float32 denormals to zero in CPU arithmetic while training, and turn flushing off after.

    Denormals arise in more places than the Adam moments `clear_tiny_moments` clears; flushing them (the
    CPU's FTZ/DAZ modes) keeps every step at full speed, and numbers this small (< 1.2e-38) move no
    weight: one paper VAE trained faster flushed than not, to the same validation loss
    (benchmarks/performance.py, benchmarks/results/performance.json). The mode is per thread and torch
    sets it in the calling thread only, so with intra-op threads the moments are still cleared as well.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


MIN_VALIDATED_SAMPLES = 10
"""Fewest images of a VAE for which `split_validation` holds any out (early stopping, novelty reference)."""


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(n) into (train, validation) index arrays; validation may be empty."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * fraction)) if n >= MIN_VALIDATED_SAMPLES else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


VALIDATION_BATCH = 1024
"""Validation images per forward pass: few calls an epoch, bounded memory on large classes."""


def _epoch_loss(vae: VAE, data: torch.Tensor, precision: str) -> float:
    """Mean negative ELBO over `data` without gradients."""
    total = 0.0
    with torch.no_grad(), autocast_for(precision, data.device):
        for i in range(0, len(data), VALIDATION_BATCH):
            batch = data[i : i + VALIDATION_BATCH]
            total += vae(batch).loss.item() * len(batch)
    return total / len(data)


def initial_vae(task: TrainingTask) -> VAE:
    """The VAE a task starts from: its `initial_state`, else a random initialisation from the torch seed in force,
    with the task's input standardisation and a decoder variance started from the task's data."""
    vae = VAE(task.vae_config)
    if task.initial_state is not None:
        vae.load_state_dict(task.initial_state)
    if task.standardization is not None:
        vae.set_standardization(*task.standardization)
        vae.start_decoder_variance(torch.from_numpy(np.ascontiguousarray(task.X, dtype=np.float32)))
    return vae


def check_finite_loss(loss: float, epoch: int, key: str, config: TrainingConfig) -> None:
    """Raise `TrainingDivergedError` when an epoch's loss is NaN or infinite: no weights are worth keeping then."""
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"training diverged (loss {loss}) at epoch {epoch} of VAE {key!r}; "
                                    f"lower learning_rate (now {config.learning_rate:g})")


def check_task(task: TrainingTask) -> None:
    """Raise `InvalidInputError` unless the task's data fits its VAE and has enough samples."""
    X, cfg = task.X, task.training_config
    if X.ndim != 2 or X.shape[1] != task.vae_config.input_dim:
        raise InvalidInputError(
            f"training data for {task.key!r} has shape {X.shape}, expected (n, {task.vae_config.input_dim})"
        )
    if len(X) < cfg.min_samples:
        raise InvalidInputError(
            f"{task.key!r} has {len(X)} training samples; at least {cfg.min_samples} are needed (min_samples)"
        )


def train_vae(task: TrainingTask, progress: Optional[ProgressCallback] = None, device: str = "cpu", *,
              make_step: Callable = make_training_step, flush_denormals: bool = True) -> TrainedVAE:
    """Fit one VAE to `task.X`, keeping the weights of the best validation epoch.

    Parameters
    ----------
    task : TrainingTask
    progress : callable, optional
        Receives one `ProgressEvent` per epoch (stage "VAE <task key>: epoch", detail: the validation loss).
    device : str
        "cpu", "cuda", "cuda:N" or "auto" (CUDA when present).
    make_step : callable, default `make_training_step`
        ``make_step(vae, learning_rate, precision)`` -> the optimisation step (`regentree.training.steps`);
        another factory, such as `AutogradTrainingStep`, trains the same task with another step to compare.
    flush_denormals : bool, default True
        Train inside `flushing_denormals`; False keeps the CPU's denormal arithmetic (to measure what it costs).

    Returns
    -------
    TrainedVAE
    """
    cfg = task.training_config
    X = task.X
    check_task(task)
    device = resolve_device(device)
    started = time.perf_counter()
    train_index, val_index = split_validation(len(X), cfg.validation_fraction, task.seed)
    with torch.random.fork_rng(devices=[]), flushing_denormals() if flush_denormals else nullcontext():
        torch.manual_seed(task.seed)
        vae = initial_vae(task).to(device)
        step = make_step(vae, cfg.learning_rate, cfg.precision)
        train = torch.from_numpy(np.ascontiguousarray(X[train_index])).to(device)
        val = torch.from_numpy(np.ascontiguousarray(X[val_index])).to(device)
        shuffler = torch.Generator().manual_seed(task.seed)
        best = (float("inf"), 0, None)
        history: list[dict] = []
        epoch = 0
        for epoch in range(1, cfg.epochs + 1):
            for group in step.optimizer.param_groups:
                group["lr"] = learning_rate_at(cfg, epoch)
            vae.train()
            order = torch.randperm(len(train), generator=shuffler).to(device)
            shuffled = torch.index_select(train, 0, order)  # one gather an epoch, then contiguous batches
            running = 0.0
            for i in range(0, len(train), cfg.batch_size):
                batch = shuffled[i : i + cfg.batch_size]
                running += step(batch).item() * len(batch)
            if torch.get_num_threads() > 1:  # flushing reaches only this thread (see `flushing_denormals`)
                clear_tiny_moments(step.optimizer)
            vae.eval()
            val_loss = _epoch_loss(vae, val, cfg.precision) if len(val) else running / len(train)
            check_finite_loss(running + val_loss, epoch, task.key, cfg)
            history.append({"epoch": epoch, "train_loss": running / len(train), "val_loss": val_loss})
            report(progress, f"VAE {task.key}: epoch", epoch, cfg.epochs, detail=f"loss {val_loss:.2f}")
            if val_loss < best[0]:
                best = (val_loss, epoch, {k: v.detach().clone().cpu() for k, v in vae.state_dict().items()})
            elif cfg.patience and epoch - best[1] >= cfg.patience:
                break
    report(progress, f"VAE {task.key}: epoch", cfg.epochs, cfg.epochs)
    return TrainedVAE(
        key=task.key,
        state_dict=best[2],
        best_epoch=best[1],
        epochs_run=epoch,
        history=history,
        validation_index=val_index,
        seconds=time.perf_counter() - started,
    )


def training_record(result: TrainedVAE, n_samples: int) -> dict:
    """What a model keeps of one VAE's training (in its manifest): epochs, time, and the loss curves,
    rounded to 4 decimals, for `regentree info --plot`."""
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 3),
        "n_samples": int(n_samples),
        "final_val_loss": result.history[-1]["val_loss"] if result.history else None,
        "train_loss": [round(float(h["train_loss"]), 4) for h in result.history],
        "val_loss": [round(float(h["val_loss"]), 4) for h in result.history],
    }


def build_vae(config: VAEConfig, state_dict: dict[str, torch.Tensor]) -> VAE:
    """A VAE in eval mode holding `state_dict` (shapes must match `config`)."""
    vae = VAE(config)
    vae.load_state_dict(state_dict)
    return vae.eval()
