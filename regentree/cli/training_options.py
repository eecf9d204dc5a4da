"""The options of every command that trains (`train`, `build-tree`, `compare`), defined once.

`@training_options` appends them to a command's signature (typer reads the signature) and hands the
command one `TrainingOptions`; `training_set` loads the training data with the shared per-class cap.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from typing import Annotated, Optional, get_type_hints

import typer

from regentree.cli.common import SCORING_PRECISION_HELP, checked_backend, err_console, read_config
from regentree.errors import ConfigError


@dataclass(frozen=True)
class TrainingOptions:
    """What the user asked of training; `None` = not given (the config file or the estimator's default holds)."""

    config: Annotated[Optional[str], typer.Option(
        help="Estimator parameters: a JSON file, or the name of a shipped config (quick_digits, paper_mnist, "
             "limited_labels, conv).")] = None
    latent_dim: Annotated[Optional[int], typer.Option(help="Latent dimension (paper: 15).")] = None
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs per VAE.")] = None
    n_regenerations: Annotated[Optional[int], typer.Option("--k", help="Re-generations per probe and VAE.")] = None
    noise_variance: Annotated[Optional[float], typer.Option("--sigma2", help="Noise variance at scoring time.")] = None
    kl_threshold: Annotated[Optional[float], typer.Option(
        help="Reject as doubtful below this KL: a fixed threshold that overrides --rejection-target (nothing is "
             "held out).")] = None
    rejection_target: Annotated[Optional[float], typer.Option(
        help="Share of probes to reject (default 0.05): fit holds out a stratified 10 % of the training images "
             "(at most 2,000) and sets the KL threshold that rejects this share of them.")] = None
    limit_per_class: Annotated[Optional[int], typer.Option(
        help="Train on at most this many images per class (a smaller class is used whole).")] = None
    base_epochs: Annotated[Optional[str], typer.Option(
        help="Train a base VAE on all training images for this many epochs first; every VAE starts from it. "
             "auto (the default): 40 epochs when the median class has fewer than 500 images, else none.")] = None
    n_jobs: Annotated[Optional[int], typer.Option(help="Train this many VAEs at once in worker processes.")] = None
    training_precision: Annotated[Optional[str], typer.Option(
        help="Training arithmetic: float32 or bfloat16 (mixed precision).")] = None
    device: Annotated[Optional[str], typer.Option(
        help="Torch device: cpu, cuda, cuda:N or auto (cuda when present).")] = None
    scoring_precision: Annotated[Optional[str], typer.Option(help=SCORING_PRECISION_HELP)] = None
    backend: Annotated[Optional[str], typer.Option(help="Where the work runs: 'local' or 'dask'.")] = None
    scheduler: Annotated[Optional[str], typer.Option(
        help="Dask scheduler: tcp://HOST:PORT, or local:N to start N local workers.")] = None
    seed: Annotated[int, typer.Option(help="Seed of training and of the re-generation noise.")] = 0

    def parameters(self) -> dict:
        """Estimator parameters: the config file's, overridden by the options given (checks backend and device)."""
        from regentree.backends.devices import resolve_device

        if self.limit_per_class is not None and self.limit_per_class < 1:
            raise ConfigError(f"--limit-per-class must be at least 1, got {self.limit_per_class}")
        if self.device is not None:
            resolve_device(self.device)
        base_epochs = None if self.base_epochs is None else parse_base_epochs(self.base_epochs)
        given = {"latent_dim": self.latent_dim, "epochs": self.epochs, "n_regenerations": self.n_regenerations,
                 "noise_variance": self.noise_variance, "kl_threshold": self.kl_threshold,
                 "rejection_target": self.rejection_target,
                 "base_epochs": base_epochs, "n_jobs": self.n_jobs,
                 "training_precision": self.training_precision, "device": self.device,
                 "scoring_precision": self.scoring_precision,
                 "backend": checked_backend(self.backend, self.scheduler), "random_state": self.seed}
        return {**read_config(self.config), **{k: v for k, v in given.items() if v is not None}}


def parse_base_epochs(text: str):
    """--base-epochs as the estimator takes it: "auto" or an integer >= 0; a one-line `ConfigError` otherwise."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"--base-epochs must be auto or an integer >= 0, got {text!r}")
    return value


def training_options(command):
    """Give a typer command the shared training options; it receives them as `training: TrainingOptions`."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "training"]
    hints = get_type_hints(TrainingOptions, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in fields(TrainingOptions)]
    names = [p.name for p in shared]

    @functools.wraps(command)
    def with_options(*args, **kwargs):
        return command(*args, training=TrainingOptions(**{n: kwargs.pop(n) for n in names}), **kwargs)

    with_options.__signature__ = inspect.Signature(own + shared)
    with_options.__annotations__ = {p.name: p.annotation for p in own + shared}
    return with_options


def training_set(data: str, split: str, limit_per_class: Optional[int], seed: int):
    """The labelled training images of DATA's `split`, capped per class; a class under the cap is said once."""
    import numpy as np

    from regentree.data import capped_subsample, load_dataset

    dataset = load_dataset(data, split=split, seed=seed)
    if not limit_per_class:
        return dataset
    counts = np.bincount(dataset.y, minlength=dataset.n_classes)
    short = np.flatnonzero(counts < limit_per_class)
    if short.size:
        smallest = int(short[np.argmin(counts[short])])
        err_console.print(
            f"--limit-per-class {limit_per_class}: {short.size} of {dataset.n_classes} classes have fewer images "
            f"and are used whole (smallest: {dataset.class_names[smallest]!r} with {counts[smallest]})",
            highlight=False, soft_wrap=True)
    return capped_subsample(dataset, limit_per_class, seed=seed)
