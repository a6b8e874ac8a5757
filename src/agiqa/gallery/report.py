"""``agiqa report``: a score table as one self-contained HTML gallery, for sharing results.

Every image becomes a thumbnail embedded as a data URL, every score gets its level word and (when the model's card
has a reference) its percentile, and the file carries the page's own CSS and JavaScript: it opens from ``file://``,
offline, and sorts like the served page. Which model's card is used (``--model``, default the default model) only
decides what the scores mean; its weights are not loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agiqa.data.files import resolve_image
from agiqa.data.images import ImageLoadError
from agiqa.gallery.page import inline_page
from agiqa.gallery.records import annotate_scores, gallery_model
from agiqa.gallery.thumbs import THUMB_SIZE, data_url, thumbnail
from agiqa.io import atomic_write_bytes, read_table
from agiqa.models.card import ModelCard
from agiqa.models.reference import card_reference

BASE_COLUMNS = ("image", "prompt", "error", "warning")


@dataclass(frozen=True)
class ReportSummary:
    """What ``write_gallery_report`` wrote: the file, how many items, how many images could not be embedded."""

    out: Path
    items: int
    missing_images: int
    bytes: int


def write_gallery_report(
    scores: str | Path,
    out: str | Path,
    card: ModelCard,
    image_folders: Sequence[str | Path] = (),
    title: str | None = None,
    thumb_size: int = THUMB_SIZE,
) -> ReportSummary:
    """Write the gallery of a score table (``agiqa score``'s output) as one HTML file.

    Args:
        scores: The score table (.csv, .jsonl, .parquet) with an ``image`` column and score columns.
        out: The HTML file to write (atomically).
        card: The card of the model that scored the table (dimensions, reference).
        image_folders: Where to look for relative image paths, before the working folder and the table's folder.
        title: Page title (default: the table's name).
        thumb_size: Longest side of the embedded thumbnails.

    Raises:
        ValueError: The table has no ``image`` column or none of the model's dimension columns.
    """
    scores = Path(scores)
    frame = read_table(scores)
    dims = [d for d in card.dimensions if d.name in frame.columns]
    if "image" not in frame.columns or not dims:
        names = ", ".join(d.name for d in card.dimensions)
        raise ValueError(f"{scores}: needs an 'image' column and score columns of model {card.name} ({names})")
    reference = card_reference(card)
    known = {*BASE_COLUMNS, *(d.name for d in dims), *(f"{d.name}_pct" for d in dims)}
    roots = [*map(Path, image_folders), Path.cwd(), scores.parent]
    items, missing = [], 0
    for record in frame.to_dict("records"):
        item = {k: record.get(k, "") for k in BASE_COLUMNS} | annotate_scores(record, dims, reference)
        item["extra"] = {k: v for k, v in record.items() if k not in known}
        try:
            item["thumbnail"] = data_url(thumbnail(resolve_image(str(record["image"]), roots), thumb_size))
        except ImageLoadError as err:
            item["thumbnail"] = None
            item["error"] = item["error"] or f"not shown: {err}"
            missing += 1
        items.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in item.items()})
    data = {"title": title or f"agiqa report: {scores.name}", "model": gallery_model(card.name, dims, reference)}
    html = inline_page({**data, "items": items}).encode("utf-8")
    out = Path(out)
    atomic_write_bytes(out, html)
    return ReportSummary(out, len(items), missing, len(html))
