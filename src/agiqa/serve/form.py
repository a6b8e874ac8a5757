"""Reading a ``POST /score`` form: Starlette's multipart parser with limits that answer 413/422 as they are passed,
and text fields that must be valid UTF-8 (Starlette would silently read invalid bytes as latin-1).

Files stay in Starlette's spooled temporary files (in memory up to 1 MiB each, on disk above) until the scoring
worker reads them; nothing here holds a whole upload in memory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from agiqa.serve.options import ServeOptions


class _Refused(MultiPartException):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _StrictParser(MultiPartParser):
    """Starlette's parser, refusing more than ``max_images`` files, long text fields and invalid UTF-8 as they
    stream in (it keys on Starlette's per-part state; tests/test_serve_limits.py guards that)."""

    def __init__(self, request: Request, options: ServeOptions) -> None:
        super().__init__(
            request.headers,
            request.stream(),
            max_files=options.max_images + 1,
            max_fields=2 * options.max_images + 8,
            max_part_size=4 * options.max_prompt_chars + 4,  # UTF-8 takes at most 4 bytes a character
        )
        self.options = options

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        if self._current_part.file is not None and self._current_files > self.options.max_images:
            raise _Refused(413, f"more than {self.options.max_images} images in one request (--max-images)")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None and len(part.data) + end - start > self.max_part_size:
            raise _Refused(
                422,
                f"form field {part.field_name!r} is longer than {self.options.max_prompt_chars} "
                "characters (--max-prompt-chars)",
            )
        super().on_part_data(data, start, end)

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode(self._charset or "utf-8")
            except (UnicodeDecodeError, LookupError) as err:
                raise _Refused(
                    422,
                    f"form field {part.field_name!r} is not valid {self._charset} text ({err}); send prompts as UTF-8",
                ) from None
        super().on_part_end()


@dataclass
class ScoreForm:
    """A checked ``POST /score`` form.

    Attributes:
        images: The uploaded files, in order.
        prompts: One prompt per image.
        form: The parsed form (``close`` releases its files).
    """

    images: list[UploadFile]
    prompts: list[str]
    form: FormData

    def close(self) -> None:
        """Close the uploaded files (from any thread)."""
        close_form(self.form)


def close_form(form: FormData) -> None:
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            with contextlib.suppress(Exception):
                value.file.close()


async def read_score_form(request: Request, options: ServeOptions) -> ScoreForm:
    """Parse and check the form of ``POST /score`` (see the module docstring).

    Raises:
        HTTPException: 413 too many images; 422 not multipart, a bad field, or mismatched prompts.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send the images as a multipart/form-data form: curl -F images=@a.png -F prompt=...")
    try:
        form = await _StrictParser(request, options).parse()
    except _Refused as err:
        raise HTTPException(err.status, err.message) from None
    except MultiPartException as err:
        raise HTTPException(422, f"malformed multipart form: {err.message}") from None
    try:
        return ScoreForm(*_check(form, options), form)
    except HTTPException:
        close_form(form)
        raise


def _check(form: FormData, options: ServeOptions) -> tuple[list[UploadFile], list[str]]:
    images = form.getlist("images")
    if not images:
        raise HTTPException(422, "send at least one file in the form field 'images'")
    if not all(isinstance(x, UploadFile) for x in images):
        raise HTTPException(422, "the form field 'images' must hold files (curl -F images=@a.png), not text")
    texts = [v for v in form.getlist("prompt") + form.getlist("prompts") if isinstance(v, str)]
    prompt, prompts = form.getlist("prompt"), form.getlist("prompts")
    if len(prompt) > 1 or (prompt and prompts):
        raise HTTPException(422, "give one 'prompt' (for every image) or 'prompts' (one per image), not both")
    if prompts and len(prompts) != len(images):
        raise HTTPException(422, f"{len(prompts)} 'prompts' for {len(images)} images; give one per image")
    if len(texts) != len(prompt) + len(prompts):
        raise HTTPException(422, "'prompt' and 'prompts' must be text fields, not files")
    for k, text in enumerate(texts):
        if len(text) > options.max_prompt_chars:
            field = "prompt" if prompt else f"prompts[{k}]"
            raise HTTPException(
                422, f"{field} has {len(text)} characters; at most {options.max_prompt_chars} (--max-prompt-chars)"
            )
    return list(images), texts if prompts else [texts[0] if texts else ""] * len(images)
