"""How the command line shows long work: rich bars on a terminal, plain timed log lines off one, or nothing."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Callable, Iterator, Optional, TextIO

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from regentree.errors import ConfigError
from regentree.progress import ProgressEvent

PROGRESS_MODES = ("auto", "bar", "log", "none")
LOG_INTERVAL_S = 15.0  # at most one periodic log line this often; a finished top-level stage is always logged

ProgressMode = Annotated[str, typer.Option(
    "--progress", help="How long work is shown: auto (bars on a terminal, log lines otherwise), bar, log or none.")]


def chosen_mode(mode: str, quiet: bool, is_terminal: bool) -> str:
    """The display to use: `--quiet` wins, `auto` becomes bars on a terminal and log lines elsewhere."""
    if mode not in PROGRESS_MODES:
        raise ConfigError(f"--progress {mode!r}: choose one of {', '.join(PROGRESS_MODES)}")
    if quiet or mode == "none":
        return "none"
    if mode == "auto":
        return "bar" if is_terminal else "log"
    return mode


def _clock(seconds: float) -> str:
    """12s, 3m07s or 2h05m: short enough for a log line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LogProgress:
    """A `ProgressCallback` writing plain lines (time, stages with counts and details, elapsed, ETA).

    For logs of unattended runs: one line when work starts, then at most one every `interval` seconds,
    and one when the outermost stage of the moment (e.g. "training VAEs" around the epochs of one VAE)
    finishes. The ETA extrapolates the outermost stage's rate.
    """

    def __init__(self, write: Callable[[str], None], interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.write, self.interval, self.clock = write, interval, clock
        self.stages: dict[str, tuple[ProgressEvent, float]] = {}  # active stage -> (last event, start time)
        self.started: Optional[float] = None
        self.last_line: Optional[float] = None

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        first_of_stage = event.stage not in self.stages
        start = now if first_of_stage else self.stages[event.stage][1]
        self.stages[event.stage] = (event, start)
        outermost = next(iter(self.stages))
        finished = event.done >= event.total
        due = self.last_line is None or now - self.last_line >= self.interval
        if due or (finished and event.stage == outermost):
            self.write(self._line(now))
            self.last_line = now
        if finished:
            del self.stages[event.stage]

    def _line(self, now: float) -> str:
        parts = []
        for event, _ in self.stages.values():
            part = f"{event.stage} {event.done}/{event.total}"
            parts.append(f"{part} ({event.detail})" if event.detail else part)
        outer, outer_start = next(iter(self.stages.values()))
        timing = f"elapsed {_clock(now - self.started)}"
        if 0 < outer.done < outer.total:
            timing += f", ETA {_clock((now - outer_start) * (outer.total - outer.done) / outer.done)}"
        return f"{datetime.now():%H:%M:%S} {' | '.join(parts)} | {timing}"


@contextmanager
def progress_display(mode: str, stream: TextIO) -> Iterator[Optional[Callable[[ProgressEvent], None]]]:
    """A `ProgressCallback` for the chosen display mode ("bar", "log" or "none"; see `chosen_mode`)."""
    if mode == "none":
        yield None
        return
    if mode == "log":
        def write(line: str) -> None:
            stream.write(line + "\n")
            stream.flush()

        yield LogProgress(write)
        return
    from rich.console import Console

    bars: dict[str, int] = {}
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as progress:

        def callback(event: ProgressEvent) -> None:
            if event.stage not in bars:
                bars[event.stage] = progress.add_task(event.stage, total=event.total)
            progress.update(bars[event.stage], completed=event.done, total=event.total)
            if event.done >= event.total and len(bars) > 1:  # an inner stage (one VAE's epochs) is done
                progress.remove_task(bars.pop(event.stage))

        yield callback
