"""``agiqa serve``: the HTTP scoring service (needs the ``serve`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail
from agiqa.cli.options import AllowUntrainedOpt, DeviceOpt, ModelOpt, check_model, load_scorer


@app.command("serve")
def serve(
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: DeviceOpt = "cpu",
) -> None:
    """HTTP scoring service: POST /score, GET /models, GET /health, GET /docs (needs the serve extra:
    `pip install 'agiqa\\[serve]'`, or `pip install -e '.\\[serve]'` in a checkout)."""
    try:
        import python_multipart  # noqa: F401  (FastAPI needs it for uploads; fails late without it)
        import uvicorn

        create_app = api.create_app
    except ImportError as exc:
        raise fail(f"{exc}; {api.install_hint('serve')}") from None
    check_model(model, allow_untrained)
    uvicorn.run(create_app(load_scorer(model, device, allow_untrained=allow_untrained)), host=host, port=port)
