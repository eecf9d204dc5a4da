"""Shared plumbing of the benchmark scripts: where the data is, machine facts, saved models, writing results."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import torch

from regentree.persistence.model_folder import load_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ROOT / "benchmarks" / "models"  # trained models reused across benchmarks; git-ignored


def shared_data(name: str) -> Path:
    """Folder of a shared data set (../shared/data/<name> beside the checkout, or $REGENTREE_DATA/<name>)."""
    base = Path(os.environ.get("REGENTREE_DATA", ROOT.parent / "shared" / "data"))
    path = base / name
    if not path.is_dir():
        sys.exit(f"error: {path} not found; set REGENTREE_DATA to the folder holding {name}/")
    return path


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
    }


class Sourced(NamedTuple):
    """A model and where it came from: `folder` it was loaded from or saved in (None: trained, not kept),
    `train_seconds` of its fit (None: loaded)."""

    model: Any
    folder: Optional[Path]
    train_seconds: Optional[float]


def load_or_train(folders: Union[Path, Sequence[Optional[Path]]], train: Optional[Callable[[], Any]] = None, *,
                  keep: Optional[Path] = None, accept: Callable[[Any], bool] = lambda model: True,
                  load: Callable[[Path], Any] = load_model, missing: str = "") -> Sourced:
    """The first model saved in `folders` (None entries skipped) that `accept` takes; else `train()`'s, timed and,
    when `keep` is given, saved there. With no `train` a saved model is required: the script stops with
    "error: `missing`" (or a line naming the folders)."""
    candidates = [folders] if isinstance(folders, Path) else [f for f in folders if f is not None]
    for folder in candidates:
        if (folder / "manifest.json").is_file():
            model = load(folder)
            if accept(model):
                return Sourced(model, folder, None)
    if train is None:
        sys.exit(f"error: {missing or 'no saved model in ' + ', '.join(map(str, candidates))}")
    started = time.perf_counter()
    model = train()
    seconds = time.perf_counter() - started
    if keep is not None:
        model.save(keep)
    return Sourced(model, keep, seconds)


def write_result(name: str, result: dict) -> Path:
    """Write benchmarks/results/<name>.json with the command, machine and date added."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **machine(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def print_table(rows: list[dict], columns: list[str]) -> None:
    """A plain fixed-width table on stdout."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths)))


class PeakRSS:
    """Context manager sampling this process's resident memory every 20 ms; `peak_mb` is the largest seen.

    Unlike tracemalloc it sees torch's tensors; unlike ru_maxrss it measures one phase, not the process so far.
    """

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_mb = 0.0

    @staticmethod
    def current_mb() -> float:
        """Resident set size now, in MiB (Linux /proc; elsewhere the process's ru_maxrss)."""
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, self.current_mb())

    def __enter__(self) -> "PeakRSS":
        import threading

        self.peak_mb = self.current_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())
