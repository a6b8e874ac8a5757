"""``agiqa serve``: the HTTP scoring service (needs the ``serve`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail
from agiqa.cli.options import DeviceOpt, ModelOpt, RuntimeOpt, ThreadsOpt, load_scorer


@app.command("serve")
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = "auto",
) -> None:
    """HTTP scoring service: POST /score, GET /models, GET /health (needs `pip install agiqa\\[serve]`)."""
    try:
        import python_multipart  # noqa: F401  (FastAPI needs it for uploads; fails late without it)
        import uvicorn

        create_app = api.create_app
    except ImportError as exc:
        raise fail(f"{exc}; install the server extra: pip install 'agiqa[serve]'") from None
    scorer = load_scorer(model, device, threads=threads or api.default_threads(), runtime=runtime)
    uvicorn.run(create_app(scorer), host=host, port=port)
