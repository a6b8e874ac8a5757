"""``agiqa serve``: the HTTP scoring service (needs the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail, message
from agiqa.cli.options import AllowUntrainedOpt, DeviceOpt, ModelOpt, RuntimeOpt, ThreadsOpt, check_model, load_scorer

DEFAULT = api.ServeOptions  # its fields' defaults are the options' defaults (a light import: no server extra)


@app.command("serve")
def serve(
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = "auto",
    max_body_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest request body (MiB), refused before it is read.")
    ] = DEFAULT.max_body_bytes / 2**20,
    max_images: Annotated[int, typer.Option(min=1, help="Most images in one request.")] = DEFAULT.max_images,
    max_prompt_chars: Annotated[
        int, typer.Option(min=1, help="Longest prompt, in characters.")
    ] = DEFAULT.max_prompt_chars,
    queue_size: Annotated[
        int, typer.Option(min=1, help="Requests waiting at most; more get 503 + Retry-After.")
    ] = DEFAULT.queue_size,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds a request may wait before a 503.")
    ] = DEFAULT.timeout_s,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0, help="Wait for more requests to batch with the first one (ms).")
    ] = DEFAULT.batch_wait_ms,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Images per model call, across batched requests.")
    ] = DEFAULT.batch_size,
    max_pixels: Annotated[
        int, typer.Option(min=1, help="Refuse larger images before decoding them.")
    ] = DEFAULT.max_pixels,
    gallery_dir: Annotated[
        Path | None,
        typer.Option("--gallery-dir", help="Folder of score tables the web page may open (nothing outside it)."),
    ] = None,
) -> None:
    """HTTP scoring service: the web page at /, POST /score, POST /explain, GET /models, GET /health, GET /docs
    (needs the serve extra: `pip install 'agiqa\\[serve]'`, or `pip install -e '.\\[serve]'` in a checkout).

    One process scores one batch at a time; run one per core or GPU behind a reverse proxy (docs/serving.md).
    """
    try:
        import python_multipart  # noqa: F401  (FastAPI needs it for uploads; fails late without it)
        import uvicorn  # noqa: F401

        options = api.ServeOptions(
            max_body_bytes=int(max_body_mb * 2**20),
            max_images=max_images,
            max_prompt_chars=max_prompt_chars,
            queue_size=queue_size,
            timeout_s=timeout,
            batch_wait_ms=batch_wait_ms,
            batch_size=batch_size,
            max_pixels=max_pixels,
        )
    except ImportError as exc:
        raise fail(f"{exc}; {api.install_hint('serve')}") from None
    except ValueError as err:
        raise fail(message(err)) from None
    if gallery_dir is not None and not gallery_dir.is_dir():
        raise fail(f"--gallery-dir {gallery_dir}: not a folder")
    check_model(model, allow_untrained)
    scorer = load_scorer(
        model, device, max_pixels, threads or api.default_threads(), runtime, allow_untrained=allow_untrained
    )
    api.run_server(scorer, options, host=host, port=port, gallery_dir=gallery_dir)
