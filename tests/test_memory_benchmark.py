"""benchmarks/memory.py runs end to end at a tiny size: one subprocess per (n, path), peak RSS reported."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import memory  # noqa: E402  (a benchmark script, found through the path above)


def test_memory_benchmark_reports_peak_rss_per_n_and_path():
    result = memory.run("quick", sizes=(40, 80))
    assert [(r["n"], r["path"]) for r in result["rows"]] == [(n, p) for n in (40, 80) for p in memory.PATHS]
    assert all(r["peak_rss_mb"] > r["decide_mb"] >= 0 for r in result["rows"])
    assert set(result["peak_growth_smallest_to_largest_n"]) == set(memory.PATHS)
    assert result["decide_mb_whole_over_chunked_at_largest_n"] > 0
