"""Command line: ``agiqa COMMAND``. Each module here adds the commands of one area to ``app``."""

from agiqa.cli import datasets, evaluate, explain, score, train  # noqa: F401  (registers commands)
from agiqa.cli.app import app


def main() -> None:
    """Entry point of the ``agiqa`` console script."""
    app()


__all__ = ["app", "main"]
