"""`run.json`, the run record of a model folder: what differs from run to run (when, where, how long).

It is kept out of `manifest.json`, so training twice with the same seed gives the same manifest bytes; it is not
hashed, and a folder without one (or with an unreadable one) loads with no timings.
"""

from __future__ import annotations

import json
import platform
import socket
import warnings
from datetime import datetime, timezone
from pathlib import Path

RUN_FILE = "run.json"
RUN_FORMAT = "regentree-run"
# the fields of a VAE's training record (`regentree.training.loop.training_record`) that depend on the run
RUN_FIELDS = ("seconds",)


def model_part(training: dict) -> dict:
    """The fields of a training record that identify the model (everything but the run's)."""
    return {k: v for k, v in training.items() if k not in RUN_FIELDS}


def run_part(training: dict) -> dict:
    """The fields of a training record that depend on the run (durations)."""
    return {k: training[k] for k in RUN_FIELDS if k in training}


def build_run_record(vae_runs: dict[str, dict]) -> dict:
    """The run record of a save: when and where, and each VAE's run fields keyed by VAE key."""
    return {
        "format": RUN_FORMAT,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "vaes": vae_runs,
    }


def read_vae_runs(folder: Path) -> dict[str, dict]:
    """Each VAE's run fields from `folder`/run.json; empty (with a warning if the file is unreadable) without one."""
    file = Path(folder) / RUN_FILE
    if not file.is_file():
        return {}
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        runs = record["vaes"] if record.get("format") == RUN_FORMAT else None
    except (OSError, ValueError, RecursionError, AttributeError, KeyError):
        runs = None
    if not isinstance(runs, dict) or not all(isinstance(v, dict) for v in runs.values()):
        warnings.warn(f"{file}: not a regentree run record; loading the model without its timings", stacklevel=3)
        return {}
    return {str(k): {f: v[f] for f in RUN_FIELDS if _is_number(v.get(f))} for k, v in runs.items()}


def _is_number(value) -> bool:
    """Whether a JSON value is a number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
