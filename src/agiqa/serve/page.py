"""The web page of ``agiqa serve`` and what it calls, as one FastAPI router (``page_router``).

* ``GET /``: the gallery page (``agiqa.gallery.page``); ``GET /page/gallery.js``, ``GET /page/gallery.css``.
* ``GET /page/model``: the loaded model's dimensions (range, direction), the level words, whether percentiles exist.
* ``POST /page/annotate`` (JSON ``{"records": [{dimension: score, ...}]}``): each score's level word and percentile,
  what the page shows next to the scores ``POST /score`` returned.
* ``POST /explain`` (multipart: one file in ``image``, a ``prompt`` field): the structured explanation of the image
  (``Scorer.explain``) as JSON, its heat-map as a PNG data URL in ``heatmap``. 422 when the image cannot be decoded
  or the model needs a prompt that is missing, or the prompt is longer than the limit; 413 above the upload limit.
  The explanation runs on the scoring queue's worker between batches and takes a place in the queue (503 with
  ``Retry-After`` when it is full), so it is bounded as ``POST /score`` is.
* With a gallery folder (``agiqa serve --gallery-dir DIR``): ``GET /gallery/tables`` (the score tables under it),
  ``GET /gallery/table?name=`` (a table's rows, annotated), ``GET /gallery/thumb?table=&row=`` (a JPEG thumbnail)
  and ``GET /gallery/image?table=&row=`` (the image itself); nothing outside the folder is read (403).
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from agiqa.api import (
    GALLERY_ASSETS,
    ExplainError,
    GalleryFolder,
    OutsideGallery,
    Scorer,
    annotate_scores,
    data_url,
    gallery_asset,
    gallery_model,
    open_image,
    save_heatmap,
    served_page,
    thumbnail,
)
from agiqa.serve.queue import QueueFull, ScoringQueue

MAX_ANNOTATE = 10_000
"""Most records one ``POST /page/annotate`` takes."""


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def page_router(
    scorer: Scorer,
    gallery_dir: str | Path | None = None,
    max_upload_bytes: int = 32 * 2**20,
    max_prompt_chars: int = 10_000,
    queue: ScoringQueue | None = None,
) -> APIRouter:
    """The routes of the page (see module docstring).

    Args:
        scorer: The loaded model.
        gallery_dir: Folder of score tables the page may open (None: no gallery routes).
        max_upload_bytes: Largest image ``POST /explain`` accepts.
        max_prompt_chars: Longest prompt ``POST /explain`` accepts (``--max-prompt-chars``).
        queue: The app's scoring queue: explanations then run on its worker between batches, never beside a
            batch, and take a place in it (503 with ``Retry-After`` when it is full). None: one at a time here.

    Raises:
        NotADirectoryError: ``gallery_dir`` is not a folder.
    """
    router = APIRouter()
    dims, reference = list(scorer.dimensions), scorer.reference
    folder = GalleryFolder(gallery_dir) if gallery_dir is not None else None
    explaining = threading.Lock()  # one explanation at a time: each is a burst of model calls

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return served_page()

    @router.get("/page/model")
    def model() -> dict[str, Any]:
        return {**gallery_model(scorer.name, dims, reference), "gallery": folder is not None}

    @router.get("/page/{name}", include_in_schema=False)
    def page_asset(name: str) -> Response:
        if name not in GALLERY_ASSETS:
            raise HTTPException(404, f"no page asset {name!r}")
        return Response(gallery_asset(name), media_type=GALLERY_ASSETS[name])

    @router.post("/page/annotate")
    def annotate(records: Annotated[list[dict[str, Any]], Body(embed=True)]) -> dict[str, Any]:
        if len(records) > MAX_ANNOTATE:
            raise HTTPException(413, f"{len(records)} records; at most {MAX_ANNOTATE} per request")
        return {"records": [annotate_scores(r, dims, reference) for r in records]}

    @router.post("/explain")
    def explain(
        image: Annotated[UploadFile, File(description="The image to explain.")],
        prompt: Annotated[str, Form(description="The prompt it was generated from.")] = "",
    ) -> dict[str, Any]:
        if len(prompt) > max_prompt_chars:
            raise HTTPException(
                422, f"prompt: {len(prompt)} characters; at most {max_prompt_chars} (--max-prompt-chars)"
            )
        data = image.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"image: upload larger than {max_upload_bytes} bytes")

        def work() -> Any:
            explanation = scorer.explain(data, prompt)
            if explanation.regions:
                explanation.heatmap = _heatmap_url(explanation, data)
            return explanation

        try:
            explanation = _run(work, queue, explaining)
        except ExplainError as err:
            raise HTTPException(422, str(err)) from None
        doc = explanation.to_dict()
        doc["image"] = image.filename or doc["image"]
        return _clean(doc)

    if folder is None:
        return router

    def _guard(call: Any) -> Any:
        try:
            return call()
        except OutsideGallery as err:
            raise HTTPException(403, str(err)) from None
        except (FileNotFoundError, IndexError) as err:
            raise HTTPException(404, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    @router.get("/gallery/tables")
    def tables() -> dict[str, Any]:
        return {"tables": folder.tables()}

    @router.get("/gallery/table")
    def table(name: str) -> dict[str, Any]:
        frame = _guard(lambda: folder.table(name))
        known = {"image", "prompt", "error", "warning", *(d.name for d in dims), *(f"{d.name}_pct" for d in dims)}
        records = []
        for row, record in enumerate(frame.to_dict("records")):
            item = {k: record.get(k, "") for k in ("image", "prompt", "error", "warning")}
            item |= annotate_scores(record, dims, reference)
            item |= {"row": row, "extra": {k: v for k, v in record.items() if k not in known}}
            records.append(item)
        return _clean({"name": name, "records": records})

    @router.get("/gallery/thumb")
    def thumb(table: str, row: int) -> Response:
        path = _guard(lambda: folder.image(table, row))
        try:
            return Response(thumbnail(path), media_type="image/jpeg")
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    @router.get("/gallery/image")
    def image_file(table: str, row: int) -> FileResponse:
        path = _guard(lambda: folder.image(table, row))
        if not path.is_file():
            raise HTTPException(404, f"row {row} of {table!r}: image file not found")
        return FileResponse(path)

    return router


def _run(work: Callable[[], Any], queue: ScoringQueue | None, lock: threading.Lock) -> Any:
    """``work()`` on the queue's worker (a full queue is a 503 with ``Retry-After``), or under ``lock`` without one."""
    if queue is None:
        with lock:
            return work()
    try:
        future = queue.call(work)
    except QueueFull as full:
        raise HTTPException(503, f"the scoring queue is full; retry after {full.retry_after} s", full.headers) from None
    return future.result()


def _heatmap_url(explanation: Any, data: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_heatmap(explanation, open_image(data)[0], Path(tmp) / "heatmap.png")
        return data_url(path.read_bytes(), "image/png")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return _finite(obj)
