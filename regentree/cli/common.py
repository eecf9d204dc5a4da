"""Shared pieces of the command line: the typer app, consoles, progress bars, error handling, configs."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import numpy as np
import typer
from rich.console import Console

from regentree.errors import ConfigError, RegentreeError
from regentree.strict_json import loads_strict

app = typer.Typer(
    help="Classification by re-generation: one VAE per class (or per class-tree node), with rejection.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_THRESHOLDS = "1,5,10,15,20"

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display (same as --progress none).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Seed = Annotated[int, typer.Option(help="Seed of training and of the re-generation noise.")]
SCORING_PRECISION_HELP = ("Scoring arithmetic: auto (bfloat16 where the CPU/GPU multiplies it in hardware, else float32), "
                          "float32 or bfloat16.")
ScoringPrecision = Annotated[Optional[str], typer.Option(help=SCORING_PRECISION_HELP + " Default: the model's.")]
Backend = Annotated[Optional[str], typer.Option(help="Where the work runs: 'local' or 'dask'.")]
Scheduler = Annotated[
    Optional[str], typer.Option(help="Dask scheduler: tcp://HOST:PORT, or local:N to start N local workers.")
]


# --------------------------------------------------------------------------- helpers
@contextmanager
def show_progress(quiet: bool, mode: str = "auto") -> Iterator:
    """A `ProgressCallback` for `--progress MODE` on stderr (None with `--quiet` or `--progress none`)."""
    from regentree.cli.progress_display import chosen_mode, progress_display

    with progress_display(chosen_mode(mode, quiet, err_console.is_terminal), sys.stderr) as callback:
        yield callback


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one line on stderr and exit code 2 (nothing else is printed)."""
    try:
        yield
    except RegentreeError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        err_console.print(f"[red]error:[/red] {exc.strerror}: {exc.filename}", soft_wrap=True)
        raise typer.Exit(2) from None


def check_positive(option: str, value: Optional[int]) -> None:
    """Refuse a count option given as 0 or less (it would otherwise be silently ignored)."""
    if value is not None and value < 1:
        raise ConfigError(f"{option} must be at least 1, got {value}")


def shipped_configs() -> dict[str, Path]:
    """The configs installed with regentree (regentree/configs/NAME.json), by NAME."""
    from importlib.resources import files

    folder = files("regentree") / "configs"
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".json")}


def read_config(config: Optional[str | Path]) -> dict:
    """Estimator parameters from `--config`: a JSON file, or the name of a shipped config (`shipped_configs`)."""
    if config is None:
        return {}
    path = Path(config)
    if not path.exists() and path.suffix == "" and str(config) in shipped_configs():
        path = shipped_configs()[str(config)]
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"--config {config}: no such file, and not a shipped config "
                          f"(one of {', '.join(sorted(shipped_configs()))})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {config}: not UTF-8 text") from None
    data = loads_strict(text, f"--config {config}", ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"--config {config}: a config must be a JSON object of estimator parameters")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if not k.startswith("_")}


def make_estimator(kind: str, config: dict, overrides: dict):
    """Estimator of `kind` from config-file params with command-line overrides (None = not given)."""
    from regentree.estimators import ESTIMATORS

    params = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    estimator = ESTIMATORS[kind]()
    unknown = set(params) - set(estimator.get_params())
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; valid ones are {sorted(estimator.get_params())}")
    return estimator.set_params(**params)


def checked_backend(backend: Optional[str], scheduler: Optional[str]) -> Optional[str]:
    """The backend spec of `--backend`/`--scheduler`; a bad name or address, or dask missing, fails here."""
    from regentree.backends.registry import backend_spec, make_backend

    spec = backend_spec(backend, scheduler)
    if spec is not None:
        make_backend(spec)
    return spec


def check_png_name(plot: Optional[Path]) -> None:
    """Refuse a `--plot` file name that is not a .png before any work is done."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot {plot}: the figure is a PNG; give a file name ending in .png")


def parse_thresholds(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--thresholds must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError("--thresholds is empty")
    return values


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)) + "\n")


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def names_in_braces(names: list, limit: int = 6) -> str:
    """"{a, b, c}", the first `limit` names and a count of the rest, for one-line displays."""
    shown = ", ".join(str(n) for n in names[:limit])
    return "{" + (shown + f", ... (+{len(names) - limit})" if len(names) > limit else shown) + "}"

