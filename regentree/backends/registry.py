"""Backends by name: a JSON-able spec ("local", "dask", "dask:local:N", "dask:tcp://HOST:PORT") -> backend.

Dask is an optional extra, imported on first use.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from regentree.backends.local import LocalBackend
from regentree.errors import ConfigError


def _dask_backend(**options):
    """A `DaskBackend`, imported only when asked for so that dask stays an optional dependency."""
    from regentree.backends.dask_cluster import DaskBackend

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
