"""The local backend: tasks in this process or in a pool of local worker processes.

A backend maps a picklable function over a list of tasks and returns the results in task order,
reporting one progress event per finished task; estimators only ever call `backend.map`.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Optional, Sequence, TypeVar

import torch

from regentree.errors import ConfigError
from regentree.progress import ProgressCallback, report

T = TypeVar("T")
R = TypeVar("R")


def _set_torch_threads(n_threads: int) -> None:
    """Worker-process initializer: share the caller's torch threads among the workers."""
    torch.set_num_threads(n_threads)


class LocalBackend:
    """Runs tasks in this process (`n_workers=1`) or in a pool of local worker processes.

    Each worker gets ``max(1, threads // n_workers)`` torch threads (threads: the caller's), so the
    workers together use the cores the caller would have used, instead of oversubscribing them.
    """

    def __init__(self, n_workers: int = 1):
        if n_workers < 1:
            raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = n_workers

    def map(
        self,
        fn: Callable[..., R],
        tasks: Sequence[T],
        progress: Optional[ProgressCallback] = None,
        stage: str = "tasks",
        shared: Optional[dict[str, Any]] = None,
    ) -> list[R]:
        """`[fn(t, **shared) for t in tasks]`, in order, one progress event per finished task.

        `shared` holds keyword arguments common to every call (e.g. a fitted model); a distributed
        backend ships them to each worker once.
        """
        shared = shared or {}
        results: list = [None] * len(tasks)
        if self.n_workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = fn(task, **shared)
                report(progress, stage, i + 1, len(tasks))
            return results
        threads = max(1, torch.get_num_threads() // self.n_workers)
        with ProcessPoolExecutor(max_workers=self.n_workers, initializer=_set_torch_threads,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(fn, task, **shared): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                report(progress, stage, done, len(tasks))
        return results
