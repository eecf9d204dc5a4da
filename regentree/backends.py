"""Where independent tasks run: in this process, in local worker processes, or on a Dask cluster.

A backend maps a picklable function over a list of tasks and returns the results in task order,
reporting one progress event per finished task. Estimators only ever call `backend.map`, and pick a
backend by a JSON-able spec: ``"local"``, ``"dask"`` (a local Dask cluster of `n_workers`),
``"dask:local:N"`` or ``"dask:tcp://HOST:PORT"``. Dask is an optional extra, imported on first use.
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


def _dask_backend(**options):
    """A `DaskBackend`, imported only when asked for so that dask stays an optional dependency."""
    from regentree.dask_backend import DaskBackend

    return DaskBackend(**options)


BACKENDS: dict[str, Callable[..., Any]] = {"local": LocalBackend, "dask": _dask_backend}


def make_backend(spec: Any = "local", **options) -> Any:
    """Backend instance from a spec ``NAME`` or ``NAME:ADDRESS`` (an existing backend is returned as is).

    Parameters
    ----------
    spec : str or backend
        ``"local"``, ``"dask"``, ``"dask:local:N"`` or ``"dask:tcp://HOST:PORT"``; an object with a
        ``map`` method is taken to be a backend already.
    **options
        Keyword arguments of the backend (``n_workers``).
    """
    if not isinstance(spec, str):
        if callable(getattr(spec, "map", None)):
            return spec
        raise ConfigError(f"backend must be a name such as 'local' or 'dask:tcp://HOST:PORT', got {spec!r}")
    name, _, address = spec.partition(":")
    if name not in BACKENDS:
        raise ConfigError(f"backend {name!r} is unknown; choose one of {sorted(BACKENDS)}")
    if address:
        if name == "local":
            raise ConfigError(f"backend 'local' takes no address, got {spec!r}; use 'dask:{address}'")
        options["address"] = address
    return BACKENDS[name](**options)


def backend_spec(name: Optional[str], scheduler: Optional[str]) -> Optional[str]:
    """The spec of a backend name plus a Dask scheduler address (None when neither is given).

    ``("dask", "tcp://HOST:PORT")`` -> ``"dask:tcp://HOST:PORT"``; a scheduler alone implies dask.
    """
    if scheduler is None:
        return name
    if name not in (None, "dask"):
        raise ConfigError(f"a Dask scheduler ({scheduler}) needs backend 'dask', not {name!r}")
    return f"dask:{scheduler}"
