"""``agiqa cache``: where the feature cache is, how big, what it holds per encoder; ``agiqa cache clear``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail

cache_app = typer.Typer(help="The feature cache that training fills: show what it holds, or clear it.")
app.add_typer(cache_app, name="cache")

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Cache folder (default: $AGIQA_CACHE_DIR, else ~/.cache/agiqa/features)."),
]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} kB"


@cache_app.callback(invoke_without_command=True)
def show(ctx: typer.Context, folder: DirOpt = None) -> None:
    """Where the cache is, its size, and its entries per encoder and kind (image features, prompts ...)."""
    if ctx.invoked_subcommand is not None:
        return
    root = folder or api.default_cache_dir()
    contents = api.cache_contents(root)
    total = sum(n.size for n in contents)
    console = Console()
    console.print(f"feature cache at {root}: {_size(total)} in {len(contents)} namespace(s)", highlight=False)
    if not contents:
        return
    tbl = Table(show_header=True)
    for col in ("encoder", "holds", "model", "entries", "size", "folder"):
        tbl.add_column(col, justify="right" if col in ("entries", "size") else "left", overflow="fold")
    for n in sorted(contents, key=lambda n: (n.encoder, n.kind)):
        tbl.add_row(n.encoder or "?", n.kind, n.model or "-", str(n.entries), _size(n.size), n.folder.name)
    console.print(tbl)
    console.print("`agiqa cache clear` removes it; training encodes what it needs again.", highlight=False)


@cache_app.command("clear")
def clear(
    folder: DirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove every cached feature (only what agiqa wrote there; other files are left alone)."""
    root = folder or api.default_cache_dir()
    contents = api.cache_contents(root)
    if not contents:
        typer.echo(f"feature cache at {root} is empty")
        return
    size = _size(sum(n.size for n in contents))
    if not yes:
        if not sys.stdin.isatty():
            raise fail(f"clearing {size} at {root} needs confirmation; pass --yes")
        typer.confirm(f"remove {size} of cached features at {root}?", abort=True)
    removed, _ = api.clear_cache(root)
    typer.echo(f"removed {removed} namespace(s), {size}, from {root}")
