"""The ``agiqa`` typer application; command modules attach their commands to ``app``."""

import typer

app = typer.Typer(
    name="agiqa",
    help="Quality, alignment and preference assessment of AI-generated images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
