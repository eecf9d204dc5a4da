"""Dask backend: the independent tasks of a model (VAE training, probe shards) on a Dask cluster.

Needs the optional extra ``pip install 'regentree[dask]'``; `regentree.backends.registry` imports this module
only when a ``dask`` backend is asked for. Each task travels with its own data and config inside the
task graph (not scattered), so the scheduler can re-run it on another worker when the one running it
dies; results come back in task order, and the estimator builds its VAEs only once all are in.

Bitwise-identical weights across backends need the same CPU kind and torch thread count: Dask workers
run torch with one thread (``OMP_NUM_THREADS=1``), which matches the local backend exactly for small
layers; wide layers (hundreds of units) can differ in the last float digits when the local run uses
several threads, because the summation order of a matrix product depends on the thread count.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from regentree.errors import ConfigError, RegentreeError
from regentree.progress import ProgressCallback, report

try:
    from distributed import Client, KilledWorker, LocalCluster, as_completed
except ImportError:
    raise ConfigError("backend 'dask' needs dask.distributed; install it with: pip install 'regentree[dask]'") from None

LOCAL_PREFIX = "local:"
CONNECT_TIMEOUT_S = 10


class WorkerLostError(RegentreeError):
    """A task was lost: the workers running it died more often than the scheduler allows."""


def local_worker_count(address: str) -> Optional[int]:
    """N of a ``local:N`` address, None for a scheduler URL such as ``tcp://HOST:PORT``.

    Raises
    ------
    ConfigError
        If `address` is neither ``local:N`` (N >= 1) nor a URL with a protocol.
    """
    if address.startswith(LOCAL_PREFIX):
        count = address[len(LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"Dask scheduler {address!r}: local:N needs a worker count N >= 1")
        return int(count)
    protocol, _, location = address.partition("://")
    if not protocol or not location:
        raise ConfigError(f"Dask scheduler {address!r} must be tcp://HOST:PORT or local:N")
    return None


class DaskBackend:
    """Runs tasks on a Dask distributed cluster, with retries, results in task order.

    Parameters
    ----------
    address : str, optional
        ``"tcp://HOST:PORT"`` of a running scheduler, or ``"local:N"`` to start a `LocalCluster` of
        N worker processes on loopback (one thread each) that is closed again afterwards.
        Default: ``"local:{n_workers}"``.
    n_workers : int
        Workers of the local cluster when `address` is not given.
    retries : int
        Extra runs of a task that raised. A task whose worker died is re-run elsewhere by the
        scheduler regardless (up to ``distributed.scheduler.allowed-failures`` times).

    Notes
    -----
    Each `map` connects (and, for ``local:N``, starts the cluster) and disconnects afterwards; use
    the backend as a context manager to keep one session over several `map` calls.
    """

    def __init__(self, address: Optional[str] = None, n_workers: int = 1, retries: int = 2):
        if n_workers < 1:
            raise ConfigError(f"n_workers must be >= 1, got {n_workers}")
        if retries < 0:
            raise ConfigError(f"retries must be >= 0, got {retries}")
        self.address = address if address is not None else f"{LOCAL_PREFIX}{n_workers}"
        self.retries = retries
        self._n_local = local_worker_count(self.address)
        self._cluster: Optional[LocalCluster] = None
        self._client: Optional[Client] = None

    # ----------------------------------------------------------------- session
    def __enter__(self) -> "DaskBackend":
        if self._client is not None:
            return self
        if self._n_local is not None:
            self._cluster = LocalCluster(
                n_workers=self._n_local, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            )
            self._client = Client(self._cluster, set_as_default=False)
            return self
        try:
            self._client = Client(self.address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"cannot reach the Dask scheduler at {self.address}: {message}") from None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client, self._cluster = None, None

    def __reduce__(self):
        """Copies and pickles (e.g. of an estimator holding this backend) name the cluster, not the session."""
        return type(self), (self.address, 1, self.retries)

    @property
    def client(self) -> Optional[Client]:
        """The `distributed.Client` of the open session (None outside a ``with`` block)."""
        return self._client

    @contextmanager
    def _session(self) -> Iterator[Client]:
        """The open client, or a client (and local cluster) for the duration of one call."""
        if self._client is not None:
            yield self._client
            return
        with self:
            yield self._client

    # ----------------------------------------------------------------- work
    def map(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[Any],
        progress: Optional[ProgressCallback] = None,
        stage: str = "tasks",
        shared: Optional[dict[str, Any]] = None,
    ) -> list:
        """`[fn(t, **shared) for t in tasks]` on the cluster, in order, one progress event per finished task.

        Parameters
        ----------
        fn : callable
            A picklable, importable function (workers must have regentree installed).
        tasks : sequence
            One argument per call; shipped inside the task graph so a lost task can be re-run.
        progress : callable, optional
            Receives `ProgressEvent(stage, done, total)` as tasks finish.
        stage : str
        shared : dict, optional
            Keyword arguments common to every call (e.g. a fitted model), sent to every worker once.

        Returns
        -------
        list
            The results, in the order of `tasks`.

        Raises
        ------
        WorkerLostError
            If a task's workers kept dying; any exception a task raised (after `retries`) is re-raised.
        """
        if len(tasks) == 0:
            return []
        with self._session() as client:
            scattered = {name: client.scatter([value], broadcast=True, hash=False)[0] for name, value in (shared or {}).items()}
            with warnings.catch_warnings():
                # the tasks carry their data on purpose: scattered data dies with its worker, a task spec does not
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                futures = client.map(fn, list(tasks), pure=False, retries=self.retries, **scattered)
            order = {future.key: i for i, future in enumerate(futures)}
            results: list = [None] * len(tasks)
            try:
                for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
                    results[order[future.key]] = future.result()
                    report(progress, stage, done, len(tasks))
            except KilledWorker as exc:
                raise WorkerLostError(f"{stage}: a task was lost on {self.address}; its workers kept dying ({exc})") from None
            finally:
                client.cancel([*futures, *scattered.values()])
        return results
