"""A FastAPI app around one ``Scorer``: ``create_app(scorer, options)``.

Endpoints:

* ``POST /score`` (multipart form): one or more files in ``images``, and either one ``prompt`` for all of them or
  one ``prompts`` field per image (in order). Answers ``{"model", "dimensions", "results": [...]}`` with one record
  per image (``image`` is the uploaded file name, ``prompt`` at most ``echo_prompt_chars`` of it; scores are null
  where the ``error`` says why). A bad image is an error in its record, not an HTTP error.
* ``GET /models``: the registered models as ``agiqa models --json`` lists them (``agiqa.api.model_info``);
  ``GET /health``: the loaded model and the queue's state; it answers while scoring runs; ``GET /docs``: the API
  reference, offline (``agiqa.serve.docs``).
* ``GET /`` (the gallery page), ``POST /explain`` and the page's other routes: ``agiqa.serve.page``.

Bounds (``ServeOptions``): bodies above ``max_body_bytes`` are refused before they are read (413), more than
``max_images`` images is a 413, a prompt above ``max_prompt_chars`` or invalid UTF-8 a 422; a full queue, or a
wait longer than ``timeout_s``, is a 503 with ``Retry-After``. Requests are scored first come first served by one
worker that batches concurrent requests (``agiqa.serve.queue``); a request whose client has gone is dropped from
the queue. Every request is logged in one line (``agiqa.serve`` logger). Other routers are added with
``app.include_router``; they find the scorer and the queue in ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from agiqa.api import Scorer, model_info
from agiqa.serve.docs import router as docs_router
from agiqa.serve.form import ScoreForm, read_score_form
from agiqa.serve.middleware import AccessLog, BodyLimit
from agiqa.serve.options import ServeOptions
from agiqa.serve.page import page_router
from agiqa.serve.queue import Job, QueueFull, ScoringQueue, busy_headers

CLIENT_GONE = 499  # nginx's code for "client closed the request"; only the log sees it
SCORE_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "prompt": {"type": "string", "description": "One prompt for every image."},
                        "prompts": {"type": "array", "items": {"type": "string"}, "description": "One per image."},
                    },
                }
            }
        },
    }
}


def create_app(scorer: Scorer, options: ServeOptions | None = None, gallery_dir: str | Path | None = None) -> FastAPI:
    """The app serving ``scorer`` within ``options``.

    Args:
        scorer: The loaded model.
        options: Limits and queueing (``ServeOptions()`` when None).
        gallery_dir: Folder of score tables the page may open (``agiqa.serve.page``); None for none.
    """
    options = options or ServeOptions()
    if options.max_pixels < scorer.max_pixels:  # the same scorer and model, with the service's stricter limit
        scorer = copy.copy(scorer)
        scorer.max_pixels = options.max_pixels
    queue = ScoringQueue(scorer, options)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(queue.close)

    app = FastAPI(
        title="agiqa",
        description="Quality, alignment and preference scores of AI-generated images.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads from a CDN; GET /docs is served offline by agiqa.serve.docs
        redoc_url=None,
    )
    app.state.scorer, app.state.queue, app.state.options = scorer, queue, options
    app.add_middleware(BodyLimit, max_bytes=options.max_body_bytes)
    app.add_middleware(AccessLog)
    app.include_router(docs_router)
    dimensions = [asdict(d) for d in scorer.dimensions]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": scorer.name,
            "dimensions": [d["name"] for d in dimensions],
            "queue": queue.stats(),
        }

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"loaded": scorer.name, "models": model_info()}

    @app.post("/score", openapi_extra=SCORE_FORM)
    async def score(request: Request) -> Response:
        try:
            queue.reserve()
        except QueueFull as full:
            await _drain(request, options.timeout_s)
            return _busy(full.retry_after, "the scoring queue is full")
        try:
            form = await asyncio.wait_for(read_score_form(request, options), options.timeout_s)
        except BaseException as err:
            queue.release()
            if isinstance(err, asyncio.TimeoutError):
                raise HTTPException(408, f"the upload took longer than {options.timeout_s:g} s (--timeout)") from None
            if isinstance(err, ClientDisconnect):
                return Response(status_code=CLIENT_GONE)
            raise
        request.state.images = len(form.images)
        job = queue.submit(Job(form.images, form.prompts, close=form.close))
        records = await _answer(request, queue, job, options.timeout_s)
        if isinstance(records, Response):
            return records
        return JSONResponse(_body(scorer, dimensions, form, records, options.echo_prompt_chars))

    app.include_router(page_router(scorer, gallery_dir, options.max_image_bytes, options.max_prompt_chars, queue=queue))
    return app


async def _answer(request: Request, queue: ScoringQueue, job: Job, timeout: float) -> list[dict] | Response:
    """The job's records; or a 503 when it waited longer than ``timeout``; or a 499 when the client went away."""
    done = asyncio.wrap_future(job.future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        finished, _ = await asyncio.wait({done, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if done not in finished:
            reason = "dropped" if gone in finished else "timed_out"
            if queue.withdraw(job, reason):
                if reason == "dropped":
                    return Response(status_code=CLIENT_GONE)
                return _busy(queue.retry_after(), f"not scored within {timeout:g} s (--timeout)")
            if gone not in finished:  # already being scored: its answer comes when the batch ends
                await asyncio.wait({done, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            return Response(status_code=CLIENT_GONE)
        if done.cancelled():  # the server is shutting down
            return _busy(queue.retry_after(), "the server is stopping")
        if job.started is not None:
            request.state.wait = job.started - job.enqueued
        return done.result()
    finally:
        gone.cancel()


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed the connection (the body has been read, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _drain(request: Request, timeout: float) -> None:
    """Reads the rest of a refused request's body and drops it, chunk by chunk (``BodyLimit`` bounds it).

    The refusal closes the connection; closing a socket with unread data resets it, and a client still sending its
    upload would then get a connection error instead of the 503.
    """
    with contextlib.suppress(ClientDisconnect, asyncio.TimeoutError, HTTPException):
        await asyncio.wait_for(_discard(request), timeout)


async def _discard(request: Request) -> None:
    async for _ in request.stream():
        pass


def _busy(retry_after: int, why: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{why}; retry after {retry_after} s"}, status_code=503, headers=busy_headers(retry_after)
    )


def _body(scorer: Scorer, dimensions: list[dict], form: ScoreForm, records: list[dict], echo: int) -> dict[str, Any]:
    for k, (upload, record) in enumerate(zip(form.images, records, strict=True)):
        record["image"] = upload.filename or f"image {k}"
        if len(record["prompt"]) > echo:
            record["prompt"] = record["prompt"][:echo] + f"... ({len(record['prompt'])} characters)"
    return {
        "model": scorer.name,
        "dimensions": dimensions,
        "results": [{k: _clean(v) for k, v in r.items()} for r in records],
    }


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
