"""A dataset as one table: every distinct image with its prompt, same-prompt group and MOS labels, one row each.

Training and the protocol address images by row of this table (features, pairs, splits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
