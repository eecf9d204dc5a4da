"""Where work runs: the torch device, and the backend that maps independent tasks.

`devices`: "cpu" / "cuda" / "auto" and what `scoring_precision="auto"` means there; `local`: in-process
or local worker processes; `dask_cluster`: a Dask cluster (optional extra, imported on first use);
`registry`: a backend by its JSON-able spec.
"""

from regentree._lazy import lazy_exports

_EXPORTS = {
    "resolve_device": "regentree.backends.devices",
    "resolve_scoring_precision": "regentree.backends.devices",
    "LocalBackend": "regentree.backends.local",
    "make_backend": "regentree.backends.registry",
    "backend_spec": "regentree.backends.registry",
    "DaskBackend": "regentree.backends.dask_cluster",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["DaskBackend", "LocalBackend", "backend_spec", "make_backend", "resolve_device", "resolve_scoring_precision"]
