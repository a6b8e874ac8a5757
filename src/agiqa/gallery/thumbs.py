"""Thumbnails: small JPEGs of images (decoded by ``agiqa.data.images``, so the same safety rules apply) and data
URLs to embed them in a page."""

from __future__ import annotations

import base64
import io

from PIL import Image

from agiqa.data.images import ImageRef, load_image

THUMB_SIZE = 256
"""Longest side of a thumbnail, in pixels."""


def thumbnail(image: ImageRef, size: int = THUMB_SIZE, quality: int = 82) -> bytes:
    """A JPEG of ``image`` whose longest side is at most ``size`` pixels.

    Raises:
        ImageLoadError: The image is missing or cannot be decoded (the message says why).
    """
    picture = load_image(image)
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    """``data:<mime>;base64,...`` of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
