"""Training examples: the images of a dataset as one table, MOS labels per dimension, and same-prompt pairs.

Rankings arrive from the readers already expanded into untied same-prompt ``PreferencePair``s; MOS datasets
are turned into pairs here (every same-prompt pair whose MOS differ by more than ``tie_margin``) when a
preference objective trains on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from agiqa.data.sample import Dataset


@dataclass
class ImageTable:
    """Every distinct image of a dataset with its prompt, group and MOS labels.

    Attributes:
        ids: Image ids, one row per image.
        images: Paths or bytes.
        prompts: Prompt of each image.
        groups: Same-prompt group of each image.
        labels: ``{dimension: (N,) MOS}``, NaN where an image has no label.
    """

    ids: list[str] = field(default_factory=list)
    images: list[str | bytes] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def row(self) -> dict[str, int]:
        """Image id -> row."""
        return {i: n for n, i in enumerate(self.ids)}


@dataclass
class Pairs:
    """Same-prompt pairs as rows of an ``ImageTable``.

    Attributes:
        a: Row of the first image.
        b: Row of the second image.
        label: Probability that ``a`` is preferred (1, 0 or 0.5).
        dim: Dimension each pair was labelled for.
    """

    a: np.ndarray
    b: np.ndarray
    label: np.ndarray
    dim: list[str]

    def __len__(self) -> int:
        return len(self.a)


def image_table(dataset: Dataset) -> ImageTable:
    """One row per distinct image of ``dataset`` (samples first, then images that only appear in pairs)."""
    table = ImageTable()
    seen: dict[str, int] = {}

    def add(image_id: str, image: str | bytes, prompt: str, group: str) -> None:
        if image_id not in seen:
            seen[image_id] = len(table.ids)
            table.ids.append(image_id)
            table.images.append(image)
            table.prompts.append(prompt)
            table.groups.append(group)

    for s in dataset.samples:
        add(s.image_id, s.image, s.prompt, s.group_id)
    for p in dataset.pairs:
        add(p.id_a, p.image_a, p.prompt, p.group_id)
        add(p.id_b, p.image_b, p.prompt, p.group_id)
    dims = dict.fromkeys(d for s in dataset.samples for d in s.labels)
    for dim in dims:
        values = np.full(len(table), np.nan)
        for s in dataset.samples:
            if dim in s.labels:
                values[seen[s.image_id]] = s.labels[dim]
        table.labels[dim] = values
    return table


def dataset_pairs(dataset: Dataset, table: ImageTable, dim: str) -> Pairs:
    """The dataset's own preference pairs, labelled for ``dim``."""
    row = table.row
    a = np.array([row[p.id_a] for p in dataset.pairs], dtype=np.int64)
    b = np.array([row[p.id_b] for p in dataset.pairs], dtype=np.int64)
    label = np.array([p.label for p in dataset.pairs], dtype=np.float32)
    return Pairs(a, b, label, [dim] * len(a))


def mos_pairs(
    table: ImageTable, rows: Sequence[int], dims: Sequence[str], tie_margin: float = 0.0, seed: int = 0
) -> Pairs:
    """Every same-prompt pair among ``rows`` whose MOS for a dimension differ by more than ``tie_margin``.

    The order inside each pair is shuffled (seeded) so that labels are balanced between 1 and 0.
    """
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[int]] = {}
    for r in rows:
        by_group.setdefault(table.groups[r], []).append(r)
    a, b, label, names = [], [], [], []
    for dim in dims:
        mos = table.labels[dim]
        for members in by_group.values():
            for i, ri in enumerate(members):
                for rj in members[i + 1 :]:
                    diff = mos[ri] - mos[rj]
                    if not np.isfinite(diff) or abs(diff) <= tie_margin:
                        continue
                    x, y = (ri, rj) if rng.random() < 0.5 else (rj, ri)
                    a.append(x)
                    b.append(y)
                    label.append(1.0 if mos[x] > mos[y] else 0.0)
                    names.append(dim)
    return Pairs(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), np.array(label, dtype=np.float32), names)


def hflip_center_crop(ratio: float) -> object:
    """Stable Preference's perturbation (Table 1): horizontal flip, then the central crop of ``ratio`` x side."""

    def view(image: Image.Image, _hash: str = "") -> Image.Image:
        flipped = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        w, h = flipped.size
        cw, ch = max(1, round(w * ratio)), max(1, round(h * ratio))
        left, top = (w - cw) // 2, (h - ch) // 2
        return flipped.crop((left, top, left + cw, top + ch))

    return view


def weak_view(index: int, area: tuple[float, float] = (0.85, 1.0), seed: int = 0) -> object:
    """Stable Preference's weak view ``index`` (``agiqa.losses.stable_preference.weak_view``) of any image.

    The random draw is seeded by (``seed``, ``index``, the image's content hash), so a view of an image is the
    same in every run and can be cached: the views are drawn once per image, not anew every epoch.
    """
    from agiqa.losses.stable_preference import weak_view as draw

    def view(image: Image.Image, content_hash: str = "") -> Image.Image:
        rng = np.random.default_rng([seed, index, int(content_hash[:12] or "0", 16)])
        return draw(image, rng, area)

    return view
