"""``agiqa serve``: the HTTP scoring service (needs the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail
from agiqa.cli.options import DeviceOpt, ModelOpt, load_scorer


@app.command("serve")
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: DeviceOpt = "cpu",
    gallery_dir: Annotated[
        Path | None,
        typer.Option("--gallery-dir", help="Folder of score tables the web page may open (nothing outside it)."),
    ] = None,
) -> None:
    """HTTP scoring service: the web page at /, POST /score, POST /explain, GET /models, GET /health (needs
    `pip install agiqa\\[serve]`)."""
    try:
        import python_multipart  # noqa: F401  (FastAPI needs it for uploads; fails late without it)
        import uvicorn

        create_app = api.create_app
    except ImportError as exc:
        raise fail(f"{exc}; install the server extra: pip install 'agiqa[serve]'") from None
    if gallery_dir is not None and not gallery_dir.is_dir():
        raise fail(f"--gallery-dir {gallery_dir}: not a folder")
    gallery = str(gallery_dir) if gallery_dir is not None else None
    uvicorn.run(create_app(load_scorer(model, device), gallery_dir=gallery), host=host, port=port)
