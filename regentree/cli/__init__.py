"""The `regentree` command line. Each command module registers its commands on the shared `app`."""

from regentree.cli import core_commands  # noqa: F401  (registers train, classify, evaluate)
from regentree.cli import rejection_commands  # noqa: F401  (registers calibrate)
from regentree.cli import class_commands  # noqa: F401  (registers add-class, remove-class; after the core in --help)
from regentree.cli import tree_commands  # noqa: F401  (registers build-tree, compare)
from regentree.cli import ensemble_command  # noqa: F401  (registers ensemble)
from regentree.cli import info_command  # noqa: F401  (registers info)
from regentree.cli.common import app


def main() -> None:
    """Entry point for `python -m regentree`."""
    app()


__all__ = ["app", "main"]
