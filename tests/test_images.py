"""Bad and unusual image files: each is decoded correctly or refused with a reason (synthetic files only)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from agiqa.data.images import ImageLoadError, load_image


def _jpeg_bytes(size: int = 64) -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _refused(ref: object, **kw: object) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_image(ref, **kw)
    return info.value.reason


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert "0 bytes" in _refused(path)
    assert "0 bytes" in _refused(b"")


def test_missing_file_and_folder_are_refused(tmp_path: Path) -> None:
    assert "not found" in _refused(tmp_path / "nope.png")
    assert "folder" in _refused(tmp_path)


def test_truncated_jpeg_is_refused_and_no_global_flag_is_set(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in _refused(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert load_image(data).size == (64, 64)  # the complete file is fine


def test_not_an_image_and_unsupported_formats(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello, I am not a picture\n")
    assert "not an image" in _refused(text)
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    assert "HEIC" in _refused(heic)
    assert "PDF" in _refused(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")


def _png_with_size(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims ``width`` x ``height`` (a classic decompression bomb shape)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_decompression_bombs_are_refused_from_the_header() -> None:
    # 400 Mpx claimed in a few bytes: Pillow's own hard limit fires first; 100 Mpx: above our default 89 Mpx.
    assert "decompression bomb" in _refused(_png_with_size(20_000, 20_000))
    assert "100,000,000 pixels, above the limit" in _refused(_png_with_size(10_000, 10_000))
    assert "above the limit of 1,000" in _refused(Image.new("RGB", (100, 100)), max_pixels=1000)
    assert load_image(Image.new("RGB", (30, 30)), max_pixels=1000).size == (30, 30)


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(path) as im:
        assert im.n_frames == 2
    assert load_image(path).getpixel((4, 4)) == (255, 0, 0)


def test_animated_webp_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 255, 0), (255, 0, 255))]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, lossless=True)
    assert load_image(path).getpixel((4, 4)) == (0, 255, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)
    im = load_image(path)
    assert im.mode == "RGB"
    r, g, b = im.getpixel((8, 8))
    assert r > 230 and g < 30 and b < 30


@pytest.mark.parametrize("value, expected", [(65535, 255), (32896, 128), (0, 0)])
def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path: Path, value: int, expected: int) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 6), value, dtype=np.uint16)).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")
    assert load_image(path).getpixel((3, 3)) == (expected,) * 3


def test_32_bit_integer_image_is_scaled() -> None:
    im = Image.fromarray(np.full((4, 4), 65535, dtype=np.int32))
    assert im.mode == "I"
    assert load_image(im).getpixel((0, 0)) == (255, 255, 255)


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 0)
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)
    out = load_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((2, 2)) == (255, 0, 0)


@pytest.mark.parametrize(
    "mode, colour, expected", [("RGBA", (255, 0, 0, 128), (255, 127, 127)), ("LA", (0, 0), (255,) * 3)]
)
def test_alpha_is_composited_on_white(tmp_path: Path, mode: str, colour: tuple, expected: tuple) -> None:
    path = tmp_path / "alpha.png"
    Image.new(mode, (4, 4), colour).save(path)
    got = load_image(path).getpixel((1, 1))
    assert all(abs(a - b) <= 1 for a, b in zip(got, expected, strict=True))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (20, 10), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 5, 5))  # white square top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    im.save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (10, 20)
    assert out.getpixel((8, 2))[0] > 200 and out.getpixel((1, 2))[0] < 50  # top-left moved to top-right


def test_other_modes_and_inputs() -> None:
    for mode in ("1", "L", "YCbCr", "I;16", "F"):
        assert load_image(Image.new(mode, (3, 3))).mode == "RGB"
    assert load_image(_jpeg_bytes(16)).size == (16, 16)
    assert load_image(bytearray(_jpeg_bytes(16))).mode == "RGB"


def test_arrays_and_tensors() -> None:
    t = torch.zeros(3, 5, 7)
    t[0] = 1.0
    assert load_image(t).size == (7, 5) and load_image(t).getpixel((0, 0)) == (255, 0, 0)
    assert load_image(np.full((5, 7, 3), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    assert load_image(np.zeros((5, 7), dtype=np.uint8)).mode == "RGB"
    assert "[0, 1]" in _refused(torch.full((3, 4, 4), 2.0))
    assert "preprocessed" in _refused(torch.zeros(2, 3, 4, 4))
    assert "dtype" in _refused(np.zeros((4, 4, 3), dtype=np.int64))
    assert "cannot read an image" in _refused(42)
