"""Safe image decoding: any reference (path, bytes, PIL image, array, tensor) -> an RGB ``PIL.Image``.

Every failure raises ``ImageLoadError`` with a reason a user can act on, so that a batch scorer can report one bad
file in its ``error`` column and go on. The rules, in the order they are applied:

* **Empty, missing, not an image, unsupported format**: refused with the reason (HEIC/AVIF/SVG/PDF are named).
* **Decompression bombs**: images of more than ``max_pixels`` pixels (default ``MAX_PIXELS`` = 89,478,485, the
  limit Pillow warns at, about 9459 x 9459) are refused from their header, before any pixel is decoded. The limit can be
  lowered per call; raising it above ``2 * PIL.Image.MAX_IMAGE_PIXELS`` also needs Pillow's own limit raised.
* **Truncated or corrupt files** are refused (Pillow's ``LOAD_TRUNCATED_IMAGES`` is never set: scoring the grey
  rest of a half-downloaded JPEG would give a confident score for garbage).
* **Animated GIF / WebP / APNG**: the first frame is scored.
* **EXIF orientation** is applied (``ImageOps.exif_transpose``), so a portrait photo is scored upright.
* **Alpha** (RGBA, LA, PA, palette with a transparent colour): composited on a white background.
* **16-bit and 32-bit integer greyscale** (``I;16``, ``I``): scaled from the 16-bit range to 8 bits (values above
  65535 clip); float greyscale (``F``) is taken as 0..255 like Pillow does.
* **CMYK, YCbCr, LAB, HSV, 1-bit, L**: converted by Pillow to RGB (no colour management).

Arrays and tensors (for the Python API): ``(H, W)``, ``(H, W, 3|4)`` arrays of ``uint8``, or float arrays in
``[0, 1]``; torch tensors ``(3, H, W)`` float in ``[0, 1]`` (channels first, as ``torchvision`` would give).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 89_478_485
"""Default largest image (width x height) that ``load_image`` decodes."""

ImageRef = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray | Any
"""What ``load_image`` accepts (``Any`` covers torch tensors without importing torch here)."""

# Magic bytes of formats people meet that Pillow cannot read without plugins.
_UNSUPPORTED_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftypheic", "HEIC"),
    (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypavif", "AVIF"),
    (0, b"%PDF", "PDF"),
    (0, b"<svg", "SVG"),
    (0, b"<?xml", "SVG/XML"),
)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageLoadError(ValueError):
    """An image could not be turned into RGB pixels.

    Attributes:
        reason: Why, in words that say what would fix it.
        source: The file (or a short description of the object) that failed.
    """

    def __init__(self, reason: str, source: str = "") -> None:
        super().__init__(f"{source}: {reason}" if source else reason)
        self.reason = reason
        self.source = source


def describe_ref(ref: object) -> str:
    """Short printable name of an image reference (a path, or ``<bytes: 123>``)."""
    if isinstance(ref, str | Path):
        return str(ref)
    if isinstance(ref, bytes | bytearray | memoryview):
        return f"<bytes: {len(ref)}>"
    shape = getattr(ref, "shape", None)
    if shape is not None:
        return f"<{type(ref).__name__} {tuple(shape)}>"
    if isinstance(ref, Image.Image):
        return f"<PIL {ref.mode} {ref.width}x{ref.height}>"
    return f"<{type(ref).__name__}>"


def load_image(ref: ImageRef, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode ``ref`` into a fully loaded RGB image (see the module docstring for every rule).

    Args:
        ref: Path, encoded bytes, ``PIL.Image``, numpy array or torch tensor.
        max_pixels: Largest ``width * height`` decoded; larger images raise ``ImageLoadError``.

    Returns:
        An RGB ``PIL.Image`` detached from any file.

    Raises:
        ImageLoadError: With the reason the image cannot be used.
    """
    source = describe_ref(ref)
    if isinstance(ref, Image.Image):
        return _to_rgb(_first_frame(ref, source, max_pixels), source)
    if isinstance(ref, str | Path):
        data = _read_file(Path(ref), source)
    elif isinstance(ref, bytes | bytearray | memoryview):
        data = bytes(ref)
        if not data:
            raise ImageLoadError("empty image data (0 bytes)", source)
    else:
        return _array_to_image(ref, source)
    return _decode(data, source, max_pixels)


def _read_file(path: Path, source: str) -> bytes:
    if not path.exists():
        raise ImageLoadError("file not found; check the path (relative paths are resolved against the table)", source)
    if path.is_dir():
        raise ImageLoadError("is a folder, not an image file", source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"cannot read the file: {exc.strerror or exc}", source) from None
    if not data:
        raise ImageLoadError("empty file (0 bytes); the download or copy probably failed", source)
    return data


def _decode(data: bytes, source: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own pixel limit (below) replaces Pillow's warning; Pillow's hard error still fires at 2x its limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return _to_rgb(_first_frame(im, source, max_pixels), source)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"refused as a possible decompression bomb: {exc}", source) from None
    except UnidentifiedImageError:
        raise ImageLoadError(_unidentified_reason(data), source) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        message = str(exc)
        if "truncated" in message or isinstance(exc, EOFError):
            reason = f"truncated image file ({message or 'unexpected end of data'}); re-download or re-export it"
        else:
            reason = f"corrupt or undecodable image ({type(exc).__name__}: {message})"
        raise ImageLoadError(reason, source) from None


def _unidentified_reason(data: bytes) -> str:
    head = data[:64].lstrip()
    for offset, magic, name in _UNSUPPORTED_SIGNATURES:
        if head[offset : offset + len(magic)].lower() == magic.lower():
            return f"unsupported image format {name}; convert it to PNG or JPEG"
    return "not an image, or a format Pillow cannot read (supported: JPEG, PNG, WebP, GIF, BMP, TIFF, ...)"


def _first_frame(im: Image.Image, source: str, max_pixels: int) -> Image.Image:
    pixels = im.width * im.height
    if pixels > max_pixels:
        raise ImageLoadError(
            f"image is {im.width}x{im.height} = {pixels:,} pixels, above the limit of {max_pixels:,} "
            "(max_pixels): refused as a possible decompression bomb; downscale it or raise the limit",
            source,
        )
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im.load()
    return ImageOps.exif_transpose(im)


def _to_rgb(im: Image.Image, source: str) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if (mode == "P" and "transparency" in im.info) or mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I"):
        arr = np.asarray(im, dtype=np.float64)
        arr = np.clip(arr / 257.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(f"cannot convert image mode {mode!r} to RGB ({exc})", source) from None


def _array_to_image(ref: object, source: str) -> Image.Image:
    if type(ref).__module__.startswith("torch"):
        tensor = ref.detach().cpu()  # type: ignore[attr-defined]
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
            raise ImageLoadError(
                "a tensor image must be (3, H, W) float RGB in [0, 1]; pass a (B, 3, H, W) batch of preprocessed "
                "pixel values to the scorer as a whole instead",
                source,
            )
        ref = tensor.float().permute(1, 2, 0).numpy()
    if not isinstance(ref, np.ndarray):
        raise ImageLoadError(
            f"cannot read an image from a {type(ref).__name__}; give a path, bytes, PIL image, array or tensor",
            source,
        )
    arr = ref
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise ImageLoadError("an array image must be (H, W), (H, W, 3) or (H, W, 4)", source)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ImageLoadError(f"array dtype {arr.dtype} not supported; use uint8 or float in [0, 1]", source)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageLoadError("float image values must be finite and in [0, 1]", source)
        arr = (arr * 255.0).round().astype(np.uint8)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)), source)
