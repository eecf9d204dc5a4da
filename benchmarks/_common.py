"""Shared plumbing of the benchmark scripts: where the data is, machine facts, writing results."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from pathlib import Path

import torch

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
