"""A FastAPI app around one ``Scorer``.

Endpoints:

* ``POST /score`` (multipart form): one or more files in ``images``, and either one ``prompt`` for all of them or
  one ``prompts`` field per image (in order). Answers ``{"model", "dimensions", "results": [...]}`` with one record
  per image (``image`` is the uploaded file name; scores are null where the ``error`` says why). A bad image is
  an error in its record, not an HTTP error; a request without images or with mismatched prompts is a 422.
* ``GET /models``: the registered models as ``agiqa models --json`` lists them (``agiqa.api.model_info``);
  ``GET /health``: the loaded model.
* ``GET /`` (the gallery page), ``POST /explain`` and the page's other routes: ``agiqa.serve.page``.

Uploads larger than ``max_upload_bytes`` are refused per image; requests with more than ``max_images`` images are
refused whole (413). Scoring runs one request at a time (the model is shared).
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile

from agiqa.api import Scorer, model_info
from agiqa.serve.page import page_router


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def create_app(
    scorer: Scorer, max_upload_bytes: int = 32 * 2**20, max_images: int = 64, gallery_dir: str | None = None
) -> FastAPI:
    """The app serving ``scorer``.

    Args:
        scorer: The loaded model.
        max_upload_bytes: Largest accepted image file.
        max_images: Most images in one request.
        gallery_dir: Folder of score tables the page may open (``agiqa.serve.page``); None for none.
    """
    app = FastAPI(title="agiqa", description="Quality, alignment and preference scores of AI-generated images.")
    lock = threading.Lock()
    dimensions = [asdict(d) for d in scorer.dimensions]

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": scorer.name, "dimensions": [d["name"] for d in dimensions]}

    @app.get("/models")
    def models() -> dict[str, Any]:
        return {"loaded": scorer.name, "models": model_info()}

    @app.post("/score")
    def score(
        images: Annotated[list[UploadFile], File(description="One or more image files.")],
        prompt: Annotated[str | None, Form(description="One prompt for every image.")] = None,
        prompts: Annotated[list[str] | None, Form(description="One prompt per image, in order.")] = None,
    ) -> dict[str, Any]:
        if not images:
            raise HTTPException(422, "send at least one file in the form field 'images'")
        if len(images) > max_images:
            raise HTTPException(413, f"{len(images)} images in one request; at most {max_images}")
        if prompt is not None and prompts:
            raise HTTPException(422, "give 'prompt' (one for all) or 'prompts' (one per image), not both")
        if prompts and len(prompts) != len(images):
            raise HTTPException(422, f"{len(prompts)} 'prompts' for {len(images)} images; give one per image")
        texts = prompts if prompts else [prompt or ""] * len(images)
        payloads: list[bytes] = []
        too_big: set[int] = set()
        for k, upload in enumerate(images):
            data = upload.file.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                too_big.add(k)
                data = b""
            payloads.append(data)
        with lock:
            records = scorer.score(payloads, texts).to_records()
        for k, (upload, record) in enumerate(zip(images, records, strict=True)):
            record["image"] = upload.filename or f"image {k}"
            if k in too_big:
                record["error"] = f"image: upload larger than {max_upload_bytes} bytes"
        return {
            "model": scorer.name,
            "dimensions": dimensions,
            "results": [{k: _clean(v) for k, v in r.items()} for r in records],
        }

    app.include_router(page_router(scorer, gallery_dir, max_upload_bytes))
    return app
