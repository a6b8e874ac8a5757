"""How every command ends: its exit codes, and the one way it reports an error before exiting.

``0`` success; ``1`` the data or some item failed (the report says which); ``2`` bad arguments (the message says
which and how to fix it); ``130`` interrupted (rerunning resumes where it can).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

OK, FAILED, BAD_ARGUMENTS, INTERRUPTED = 0, 1, 2, 130


def stderr() -> Console:
    """A console on stderr, made per call so that the terminal width (``COLUMNS``) is read when a command runs."""
    return Console(stderr=True)


def fail(message: str, code: int = BAD_ARGUMENTS) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr and return the exit to raise (``raise fail(...)``)."""
    stderr().print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def message(err: BaseException) -> str:
    """The text of an exception, without the quotes ``KeyError`` puts around it."""
    return str(err).strip("'\"")
