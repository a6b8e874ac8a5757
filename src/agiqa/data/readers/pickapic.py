"""Pick-a-Pic (Kirstain et al., 2023): Hugging Face parquet shards with both images as encoded bytes.

Columns ``caption, jpg_0, jpg_1, label_0, label_1`` (``label_0`` = 1, 0 or 0.5 for a tie), optionally
``image_0_uid, image_1_uid, has_label``. The shards of split ``S`` are every ``*.parquet`` under ``root``
(searched recursively, sorted by path) whose name is ``S.parquet`` or starts with ``S-`` / ``S_`` (the Hub
names them ``data/S-00000-of-00002-<hash>.parquet``), or any parquet inside a folder named ``S``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from agiqa.data.datasets import DatasetError, register_dataset
from agiqa.data.readers.assemble import finish
from agiqa.data.readers.tables import row_where
from agiqa.data.sample import Dataset, PreferencePair, Problem, Sample

SPLITS = ("validation_unique", "test_unique", "validation", "test", "train")
COLUMNS = ("caption", "jpg_0", "jpg_1", "label_0", "label_1")


def split_files(root: Path, split: str) -> list[Path]:
    """Parquet shards of ``split`` under ``root`` (see the module docstring for the naming rule)."""
    return sorted(
        p
        for p in root.rglob("*.parquet")
        if p.stem == split or p.name.startswith((f"{split}-", f"{split}_")) or p.parent.name == split
    )


def _pairs(path: Path, problems: list[Problem]) -> list[PreferencePair]:
    schema = pq.read_schema(path)
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise DatasetError(f"{path}: missing column {', '.join(map(repr, missing))} (found {', '.join(schema.names)})")
    extra = [c for c in ("image_0_uid", "image_1_uid", "has_label") if c in schema.names]
    table = pq.read_table(path, columns=[*COLUMNS, *extra]).to_pylist()
    pairs = []
    for i, row in enumerate(table):
        where = row_where(path, i)
        if row.get("has_label") is False:
            continue
        l0, l1 = row["label_0"], row["label_1"]
        if l0 not in (0, 0.5, 1) or l1 is None or abs(l0 + l1 - 1) > 1e-6:
            problems.append(Problem("bad-label", where, f"label_0={l0!r}, label_1={l1!r} are not 1/0/0.5 summing to 1"))
            continue
        if not isinstance(row["jpg_0"], bytes) or not isinstance(row["jpg_1"], bytes) or not row["caption"]:
            problems.append(Problem("bad-label", where, "empty caption or image bytes; left out"))
            continue
        id_a = str(row.get("image_0_uid") or f"{path.stem}:{i}:0")
        id_b = str(row.get("image_1_uid") or f"{path.stem}:{i}:1")
        caption = str(row["caption"]).strip()
        pairs.append(PreferencePair(caption, row["jpg_0"], row["jpg_1"], float(l0), id_a, id_b))
    return pairs


@register_dataset(
    "pickapic",
    dimensions=("preference",),
    label_kind="pairs",
    description="Pick-a-Pic: preference pairs with ties, parquet splits validation_unique / test_unique",
)
def read_pickapic(root: Path, *, split: str = "test_unique", check_images: bool = False) -> Dataset:
    """Read the parquet shards of one split; ties are kept as ``label=0.5`` (metrics leave them out).

    Args:
        root: Folder holding the parquet files (searched recursively).
        split: ``validation_unique``, ``test_unique`` (default), or another split name in the file names.
        check_images: Open every image header (from the bytes) and report unreadable ones.
    """
    files = split_files(root, split)
    if not files:
        found = sorted({p.name for p in root.rglob("*.parquet")})[:5]
        raise FileNotFoundError(
            f"no parquet file for split {split!r} under {root} (want {split}.parquet or {split}-*.parquet); "
            f"found {', '.join(found) or 'no parquet files'}; known splits: {', '.join(SPLITS)}"
        )
    problems: list[Problem] = []
    pairs = [p for f in files for p in _pairs(f, problems)]
    samples = list(
        {
            img_id: Sample(img, p.prompt, img_id, meta={"split": split})
            for p in pairs
            for img, img_id in ((p.image_a, p.id_a), (p.image_b, p.id_b))
        }.values()
    )
    return finish("pickapic", root, samples, problems, (), check_images, pairs)
