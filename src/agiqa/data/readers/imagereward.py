"""ImageReward test set (Xu et al., 2023): ``test.json`` with ``{id, prompt, generations, ranking}`` + images.

``ranking`` numbers each generation (1 is best, ties allowed); every untied same-prompt pair becomes a
``PreferencePair`` (the real file: 466 groups, 6,399 pairs). The group is the entry ``id``: three prompt texts
occur under two ids each, and the official protocol ranks per entry.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agiqa.data.datasets import DatasetError, register_dataset
from agiqa.data.readers.assemble import finish, rank_pairs
from agiqa.data.readers.tables import find_file, read_label_table, row_where
from agiqa.data.sample import Dataset, PreferencePair, Problem, Sample

IMAGE_DIRS = ("", "images", "test_images")


def locate_images(root: Path, first: str, image_root: str | Path | None) -> Path:
    """``image_root`` if given, else the first of ``IMAGE_DIRS`` under ``root`` holding the file ``first``."""
    if image_root is not None:
        return Path(image_root)
    return next((root / d for d in IMAGE_DIRS if (root / d / first).is_file()), root)


def ranked_groups(
    entries: pd.DataFrame,
    path: Path,
    image_dir: Path,
    columns: tuple[str, str, str, str],
    problems: list[Problem],
) -> tuple[list[Sample], list[PreferencePair]]:
    """Ranked samples and untied pairs from ``(group, prompt, images, ranks)`` columns."""
    group_col, prompt_col, images_col, rank_col = columns
    samples: list[Sample] = []
    pairs: list[PreferencePair] = []
    for i, row in entries.iterrows():
        where = row_where(path, int(i))
        images, ranks = row[images_col], row[rank_col]
        try:
            ranks = [int(r) for r in ranks]
        except (TypeError, ValueError):
            problems.append(Problem("bad-label", where, f"{rank_col} {ranks!r} is not a list of integers; left out"))
            continue
        if not isinstance(images, list) or len(images) != len(ranks) or len(images) < 2:
            problems.append(Problem("bad-label", where, f"{images_col} and {rank_col} lengths differ or < 2; left out"))
            continue
        group, prompt = str(row[group_col]), str(row[prompt_col]).strip()
        paths = [str(image_dir / p) for p in images]
        ids = [str(p) for p in images]
        samples += [
            Sample(p, prompt, i_, group=group, rank=r, meta={"entry": int(i)})
            for p, i_, r in zip(paths, ids, ranks, strict=True)
        ]
        pairs += rank_pairs(ids, paths, ranks, prompt, group)
    return samples, pairs


@register_dataset(
    "imagereward",
    dimensions=("preference",),
    label_kind="rank",
    description="ImageReward test: 466 prompts with ranked generations -> 6,399 untied pairs (test.json)",
)
def read_imagereward(root: Path, *, image_root: str | None = None, check_images: bool = False) -> Dataset:
    """Read ``root/test.json``.

    Args:
        root: Folder holding ``test.json``.
        image_root: Folder the ``generations`` paths are relative to; by default ``root``, ``root/images`` or
            ``root/test_images``, whichever holds the first image.
        check_images: Open every image header and report missing or unreadable files.
    """
    path = find_file(root, ["test.json"], "ImageReward test.json")
    entries = read_label_table(path, ["id", "prompt", "generations", "ranking"])
    first = next((g[0] for g in entries["generations"] if isinstance(g, list) and g), None)
    if first is None:
        raise DatasetError(f"{path}: no entry has a non-empty 'generations' list")
    problems: list[Problem] = []
    image_dir = locate_images(root, first, image_root)
    cols = ("id", "prompt", "generations", "ranking")
    samples, pairs = ranked_groups(entries, path, image_dir, cols, problems)
    return finish("imagereward", root, samples, problems, (), check_images, pairs)
