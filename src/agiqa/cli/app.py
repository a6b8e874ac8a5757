"""The ``agiqa`` typer application; command modules attach their commands to ``app``."""

from typing import Annotated

import typer

from agiqa import api

app = typer.Typer(
    name="agiqa",
    help="Quality, alignment and preference assessment of AI-generated images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"agiqa {api.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Quality, alignment and preference assessment of AI-generated images."""
