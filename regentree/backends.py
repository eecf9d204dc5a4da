"""Where independent tasks run: in this process, in local worker processes, or (later) on Dask.

A backend maps a picklable function over a list of tasks and returns the results in task order,
reporting one progress event per finished task. Estimators only ever call `backend.map`.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Optional, Sequence, TypeVar

from regentree.errors import ConfigError
from regentree.progress import ProgressCallback, report

T = TypeVar("T")
R = TypeVar("R")


class LocalBackend:
    """Runs tasks in this process (`n_workers=1`) or in a pool of local worker processes."""

    def __init__(self, n_workers: int = 1):
        if n_workers < 1:
            raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
        self.n_workers = n_workers

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        progress: Optional[ProgressCallback] = None,
        stage: str = "tasks",
    ) -> list[R]:
        """`[fn(t) for t in tasks]`, in order, one progress event per finished task."""
        results: list = [None] * len(tasks)
        if self.n_workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = fn(task)
                report(progress, stage, i + 1, len(tasks))
            return results
        with ProcessPoolExecutor(max_workers=self.n_workers) as pool:
            futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                report(progress, stage, done, len(tasks))
        return results


BACKENDS: dict[str, Callable[..., LocalBackend]] = {"local": LocalBackend}


def make_backend(name: str = "local", **options) -> LocalBackend:
    """Backend instance by registry name."""
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r} is unknown; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](**options)
