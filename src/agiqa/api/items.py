"""What to score: image files found under paths with one prompt, or the rows of an ``image, prompt`` table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agiqa.data.files import ImageScan, resolve_image, scan_images
from agiqa.io import read_item_table


@dataclass(frozen=True)
class Items:
    """Items to score, in order.

    Attributes:
        names: What goes in the ``image`` column of the output (the path as given, or the table's cell).
        files: Where each image is.
        prompts: The prompt of each image.
        extra: The input table's other columns, one row per item (None for items found under paths).
        skipped: Files found in the searched folders that are not images agiqa reads, counted by extension
            (see ``agiqa.data.files.ImageScan``).
    """

    names: list[str]
    files: list[Path]
    prompts: list[str]
    extra: pd.DataFrame | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def skipped_summary(self) -> str:
        """``skipped 3 files: 2 .svg, 1 .heic`` (empty when nothing was skipped)."""
        return ImageScan(self.files, self.skipped).skipped_summary()

    def __len__(self) -> int:
        return len(self.files)


def items_from_paths(paths: Sequence[str | Path], prompt: str = "") -> Items:
    """Image files named by ``paths`` (folders searched recursively), each with ``prompt``; the other files of
    the folders are counted in ``skipped``.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    scan = scan_images(paths)
    return Items([str(f) for f in scan.files], scan.files, [prompt] * len(scan.files), skipped=scan.skipped)


def items_from_table(table: str | Path, folders: Sequence[str | Path] = ()) -> Items:
    """The rows of a csv/jsonl/parquet table with columns ``image`` and ``prompt`` (other columns kept).

    A relative ``image`` is looked up in ``folders``, then beside the table.

    Raises:
        ValueError: The table lacks a column, has an empty ``image`` cell or an unknown format.
        FileNotFoundError: The table does not exist.
    """
    table = Path(table)
    rows, extra = read_item_table(table)
    roots = [*map(Path, folders), table.parent]
    return Items([r[0] for r in rows], [resolve_image(r[0], roots) for r in rows], [r[1] for r in rows], extra)
