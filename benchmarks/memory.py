"""Peak memory of deciding n probes, chunked (the library's path) beside all at once.

    python benchmarks/memory.py            # n = 1k, 5k, 20k probes, K=300, a 10-class digits model
    python benchmarks/memory.py --quick    # n = 250, 1k, 4k probes, K=100

Each (n, path) runs in a fresh subprocess that loads the model, builds n probes (the embedded digits,
tiled) and decides them; it reports its peak resident memory (VmHWM in /proc/self/status, else
getrusage) before and after deciding. "chunked" is `model.decide` (chunks of the memory budget);
"whole" is the model's own `_decide` on all probes at once, the path before chunking, which keeps the
(n, classes, K) distances of every probe. Writes benchmarks/results/memory[_quick].json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import print_table, write_result

PATHS = ("chunked", "whole")
SETTINGS = {
    "full": {"sizes": (1000, 5000, 20000), "n_regenerations": 300, "memory_budget_mb": 64.0},
    "quick": {"sizes": (500, 2000, 8000), "n_regenerations": 50, "memory_budget_mb": 4.0},
}
"""The full run keeps the library's default memory budget (64 MB); the quick one lowers it so that its
smaller probe counts already span several chunks."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1024 if sys.platform != "darwin" else 1024**2  # ru_maxrss is kB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / scale / 1024**2


def train_model(folder: Path, n_regenerations: int, memory_budget_mb: float) -> Path:
    """A small 10-class flat model on the embedded digits (quality does not matter for memory), saved."""
    from regentree import FlatRegenClassifier
    from regentree.data import load_digits_dataset
    from regentree.persistence.model_folder import save_model

    data = load_digits_dataset("train", seed=0)
    model = FlatRegenClassifier(hidden_dims=(64,), latent_dim=4, epochs=2, batch_size=64, patience=0,
                                n_regenerations=n_regenerations, memory_budget_mb=memory_budget_mb, random_state=0)
    return save_model(model.fit(data.X, data.y, image_shape=(8, 8)), folder / "model")


def measure(model_path: str, n: int, path: str) -> dict:
    """Peak RSS (MiB) of deciding `n` probes by `path` in this process: before and after deciding."""
    from regentree.data import load_digits_dataset
    from regentree.persistence.model_folder import load_model

    model = load_model(model_path)
    X = load_digits_dataset("all").X
    X = np.tile(X, (-(-n // len(X)), 1))[:n]
    model.decide(X[:10])  # lazy imports and kernel set-up outside the difference
    before = peak_rss_mb()
    decision = model.decide(X) if path == "chunked" else model._decide(model._validate_probes(X), None)
    assert len(decision.class_index) == n
    after = peak_rss_mb()
    return {"n": n, "path": path, "peak_rss_mb": round(after, 1), "decide_mb": round(after - before, 1)}


def run(mode: str, sizes=None) -> dict:
    """Every (n, path) of `mode` (or of `sizes`) in its own subprocess; the rows and the peak growth per path."""
    settings = {**SETTINGS[mode], **({"sizes": tuple(sizes)} if sizes else {})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = train_model(Path(tmp), settings["n_regenerations"], settings["memory_budget_mb"])
        for n in settings["sizes"]:
            for path in PATHS:
                done = subprocess.run([sys.executable, __file__, "--worker", str(model), str(n), path],
                                      check=True, capture_output=True, text=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    growth = {}
    for path in PATHS:
        mine = [r for r in rows if r["path"] == path]
        growth[path] = round(mine[-1]["peak_rss_mb"] / mine[0]["peak_rss_mb"], 3)
    largest = [r for r in rows if r["n"] == settings["sizes"][-1]]
    by_path = {r["path"]: r["decide_mb"] for r in largest}
    return {"mode": mode, **settings, "rows": rows, "peak_growth_smallest_to_largest_n": growth,
            "decide_mb_whole_over_chunked_at_largest_n": round(by_path["whole"] / max(by_path["chunked"], 0.1), 2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller probe counts and K.")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "N", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model, n, path = args.worker
        print(json.dumps(measure(model, int(n), path)))
        return
    result = run("quick" if args.quick else "full")
    print_table(result["rows"], ["n", "path", "peak_rss_mb", "decide_mb"])
    print(f"peak growth, smallest to largest n: {result['peak_growth_smallest_to_largest_n']}")
    path = write_result("memory_quick" if args.quick else "memory", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
