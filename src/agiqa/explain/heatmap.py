"""The region map drawn over the image: ``overlay(explanation, image)`` and ``save_heatmap``.

Each grid cell is outlined in the colour of its level (``LEVEL_COLOURS``), the level of the same absolute scale as
the whole-image score (``agiqa.explain.structured.level_of``: equal fifths of the dimension's range), so a colour
means the same score band on every image. Only the outlines and a small label per cell are drawn on the picture,
which stays visible however dark it is; a legend below gives each colour's level and score band, and the whole
image's score.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from agiqa.explain.structured import LEVELS, Explanation, level_bands

LEVEL_COLOURS = {
    "bad": (215, 48, 39),
    "poor": (252, 141, 89),
    "fair": (250, 215, 60),
    "good": (145, 207, 96),
    "perfect": (26, 152, 80),
}
"""RGB outline colour of each level (red to green)."""

WIDTH = 768
"""Width the picture is drawn at (cells are outlined at this scale)."""
OUTLINE = 4
"""Outline width of a cell in pixels (the worst cell's is twice as wide)."""
LEGEND = 56
"""Height of the legend below the picture."""


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def cell_box(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    """A region's pixel box on the drawn picture, shrunk by one pixel so neighbours' outlines do not overlap."""
    left, top, right, bottom = (round(v * scale) for v in box)
    return left + 1, top + 1, right - 2, bottom - 2


def overlay(explanation: Explanation, image: Image.Image) -> Image.Image:
    """The picture (``WIDTH`` wide) with each region outlined in its level's colour, and a legend below.

    Raises:
        ValueError: The explanation has no region map (``grid=0``).
    """
    if not explanation.regions:
        raise ValueError("this explanation has no region map (grid=0); explain with grid >= 1 to draw a heat-map")
    spec = next(d for d in explanation.dimensions if d.name == explanation.region_dimension)
    scale = WIDTH / image.width
    picture = image.convert("RGB").resize((WIDTH, max(1, round(image.height * scale))), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (WIDTH, picture.height + LEGEND), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    layer = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw, marks = ImageDraw.Draw(canvas), ImageDraw.Draw(layer)
    font = _font(14)
    for region in explanation.regions:
        box = cell_box(region.box, scale)
        worst = region.name == explanation.worst_region
        draw.rectangle(box, outline=LEVEL_COLOURS[region.level], width=OUTLINE * (2 if worst else 1))
        label = f"{region.score:.2f} {region.level}" + (" (worst)" if worst else "")
        x, y = box[0] + OUTLINE * 2 + 2, box[1] + OUTLINE * 2 + 2
        bbox = marks.textbbox((x, y), label, font=font)
        marks.rectangle((bbox[0] - 3, bbox[1] - 2, bbox[2] + 3, bbox[3] + 2), fill=(0, 0, 0, 150))
        marks.text((x, y), label, fill=(255, 255, 255, 255), font=font)
    canvas = Image.alpha_composite(canvas.convert("RGBA"), layer).convert("RGB")
    _legend(ImageDraw.Draw(canvas), explanation, spec.name, picture.height)
    return canvas


def _legend(draw: ImageDraw.ImageDraw, explanation: Explanation, name: str, top: int) -> None:
    spec = next(d for d in explanation.dimensions if d.name == name)
    font = _font(13)
    whole = f"{name} by region; whole image {spec.score:.2f} ({spec.level}); cells are scored as pictures of their own"
    draw.text((8, top + 6), whole, fill=(0, 0, 0), font=font)
    step = WIDTH // len(LEVELS)
    for k, (level, band) in enumerate(level_bands(spec).items()):
        x = 8 + k * step
        draw.rectangle((x, top + 30, x + 18, top + 48), fill=LEVEL_COLOURS[level])
        draw.text((x + 24, top + 32), f"{level} {band}", fill=(0, 0, 0), font=font)


def save_heatmap(explanation: Explanation, image: Image.Image, path: str | Path) -> Path:
    """Write ``overlay(explanation, image)`` as a PNG and record its path in the explanation."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    overlay(explanation, image).save(path, format="PNG")
    explanation.heatmap = str(path)
    return path
