"""Progress reporting for long work: the library calls a callback, only the CLI draws bars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long task: `done` out of `total` units of the stage named `stage`."""

    stage: str
    done: int
    total: int
    detail: str = ""  # e.g. "loss 97.31": shown beside the count by log-style displays


ProgressCallback = Callable[[ProgressEvent], None]


def report(callback: Optional[ProgressCallback], stage: str, done: int, total: int, detail: str = "") -> None:
    """Send one event to `callback` if there is one."""
    if callback is not None:
        callback(ProgressEvent(stage, done, total, detail))


def within(callback: Optional[ProgressCallback], start: int, count: int, n: int) -> Optional[ProgressCallback]:
    """`callback` for work on items [start, start + count) of n: each event's counts scaled to the whole n.

    A stage whose total is proportional to the items (probes, or probes times VAE evaluations) then
    counts on across consecutive chunks instead of restarting at 0 for each.
    """
    if callback is None or count == n:
        return callback

    def shifted(event: ProgressEvent) -> None:
        per_item = event.total / count
        callback(ProgressEvent(event.stage, round(start * per_item) + event.done, round(n * per_item), event.detail))

    return shifted
