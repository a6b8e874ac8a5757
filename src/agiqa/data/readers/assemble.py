"""Turning what a reader parsed into a checked ``Dataset``: ranked groups as pairs, image headers opened once."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

from agiqa.data.sample import Dataset, PreferencePair, Problem, Sample


def rank_pairs(
    ids: Sequence[str], images: Sequence[str | bytes], ranks: Sequence[int], prompt: str, group: str
) -> list[PreferencePair]:
    """Every untied pair of one ranked group; lower rank is better (``label`` 1.0: ``a`` ranks lower)."""
    pairs = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            if ranks[i] != ranks[j]:
                label = 1.0 if ranks[i] < ranks[j] else 0.0
                pairs.append(PreferencePair(prompt, images[i], images[j], label, ids[i], ids[j], group))
    return pairs


def _image_problem(image: str | bytes, where: str) -> Problem | None:
    if isinstance(image, str) and not Path(image).is_file():
        return Problem("missing-image", image, f"image file not found ({where})")
    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:
            _ = im.size  # header only: no full decode
    except Exception as err:  # PIL raises many types for broken files
        return Problem("unreadable-image", image if isinstance(image, str) else where, f"cannot open image: {err}")
    return None


def check_images(dataset: Dataset) -> None:
    """Open the header of every image of ``dataset`` once; add a problem per missing or unreadable image.

    When not a single image can be opened the dataset gets a fatal ``no-images`` problem: scoring needs images
    (``agiqa datasets validate --labels-only`` checks label files alone).
    """
    seen: dict[str | bytes, str] = {}
    for s in dataset.samples:
        seen.setdefault(s.image, s.image_id)
    for p in dataset.pairs:
        seen.setdefault(p.image_a, p.id_a)
        seen.setdefault(p.image_b, p.id_b)
    found = [q for q in (_image_problem(img, where) for img, where in seen.items()) if q is not None]
    dataset.problems.extend(found)
    if seen and len(found) == len(seen):
        dataset.problems.append(
            Problem(
                "no-images",
                str(dataset.root),
                f"none of the {len(seen)} images could be opened: is the image folder in place? "
                "(check_images=False, or `agiqa datasets validate --labels-only`, checks the label files alone)",
                fatal=True,
            )
        )


def finish(
    name: str,
    root: Path,
    samples: list[Sample],
    problems: list[Problem],
    dimensions: Iterable[str],
    check: bool,
    pairs: list[PreferencePair] | None = None,
) -> Dataset:
    """Assemble the ``Dataset`` and run the optional image check."""
    ds = Dataset(name, root, samples, pairs or [], tuple(dimensions), problems)
    if check:
        check_images(ds)
    return ds
