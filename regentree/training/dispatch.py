"""Where a model's independent training tasks run: stacked on a GPU, in process, or on a backend's workers."""

from __future__ import annotations

from typing import Callable, Optional

from regentree.backends.devices import resolve_device
from regentree.backends.local import LocalBackend
from regentree.backends.registry import make_backend
from regentree.progress import ProgressCallback
from regentree.training.loop import TrainedVAE, TrainingTask, train_vae
from regentree.training.stacked import train_vaes_stacked
from regentree.vae.architectures import ARCHITECTURES


def run_training_tasks(tasks: list[TrainingTask], *, backend, n_jobs: int, device: str,
                       progress: Optional[ProgressCallback] = None, train: Callable = train_vae) -> list[TrainedVAE]:
    """Train every task, results in task order.

    In-process on a GPU (backend "local", n_jobs=1, CUDA device) stackable VAEs (`mlp`) train together as one stacked
    model (`regentree.training.stacked`); on the CPU that measured no faster than one after the other
    (benchmarks/performance.py), so there each task runs `train` (``train(task, device=..., progress=...)``,
    by default `train_vae`) on the backend.
    """
    stackable = backend == "local" and int(n_jobs) == 1 and all(ARCHITECTURES[t.vae_config.architecture].stackable for t in tasks)
    if stackable and resolve_device(device).type == "cuda":
        return train_vaes_stacked(tasks, progress=progress, device=device)
    runner = make_backend(backend, n_workers=int(n_jobs))
    shared = {"device": device}
    if isinstance(runner, LocalBackend) and runner.n_workers == 1:  # in-process: epochs can be reported
        shared["progress"] = progress
    return runner.map(train, tasks, progress=progress, stage="training VAEs", shared=shared)
