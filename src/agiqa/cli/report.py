"""``agiqa report``: a score table as a self-contained HTML gallery (thumbnails embedded, sortable, offline).

Exit codes: 0 when written with every image shown, 1 when some images could not be read (their cards say so),
2 for bad arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, fail, message, stderr
from agiqa.cli.options import ModelOpt


@app.command("report")
def report(
    scores: Annotated[Path, typer.Argument(help="Score table written by `agiqa score` (.csv, .jsonl, .parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")],
    model: ModelOpt = None,
    images: Annotated[
        list[Path] | None,
        typer.Option("--images", help="Folder to look for relative image paths in (repeat; then . and the table's)."),
    ] = None,
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    thumb_size: Annotated[int, typer.Option(min=32, max=1024, help="Longest side of the thumbnails, pixels.")] = 256,
) -> None:
    """Write SCORES as one HTML file: a gallery sorted by any dimension, with level words and (when the model has a
    reference distribution) percentiles. It embeds its thumbnails, CSS and script, so it opens from file:// offline.

    --model names the model that scored the table (its card gives the dimensions' ranges and reference; its weights
    are not loaded).
    """
    name = model or api.DEFAULT_MODEL
    try:
        card = api.resolve_card(name)
    except (KeyError, FileNotFoundError, ValueError) as err:
        raise fail(f"--model {name}: {message(err)}") from None
    if out.suffix.lower() not in (".html", ".htm"):
        raise fail(f"--out {out}: give an .html file")
    try:
        done = api.write_gallery_report(scores, out, card, images or [], title, thumb_size)
    except (FileNotFoundError, ValueError) as err:
        raise fail(message(err)) from None
    stderr().print(
        f"wrote {done.out} ({done.items} images, {done.bytes / 2**20:.1f} MiB)"
        + (f"; {done.missing_images} images could not be read" if done.missing_images else ""),
        highlight=False,
        soft_wrap=True,
    )
    if done.missing_images:
        raise typer.Exit(FAILED)
