"""The `regentree` command line. Each command module registers its commands on the shared `app`."""

from regentree.cli import core_commands  # noqa: F401  (registers train, classify, evaluate)
from regentree.cli.common import app


def main() -> None:
    """Entry point for `python -m regentree`."""
    app()


__all__ = ["app", "main"]
