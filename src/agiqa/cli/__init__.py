"""Command line: ``agiqa COMMAND``. One module per command group adds its commands to ``app``; every command calls
the public API (``agiqa.api``) only and reports errors through ``agiqa.cli.errors``."""

from agiqa.cli import (  # noqa: F401  (registers commands)
    bench,
    cache,
    datasets,
    evaluate,
    explain,
    models,
    report,
    score,
    serve,
    train,
)
from agiqa.cli.app import app


def main() -> None:
    """Entry point of the ``agiqa`` console script."""
    app()


__all__ = ["app", "main"]
