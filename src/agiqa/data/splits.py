"""Seeded train/test splits grouped by prompt, stored as JSON so every method is scored on the same splits.

A split never puts one group (``Sample.group_id`` / ``PreferencePair.group_id``, the prompt by default) on
both sides. The test side gets ``round(test_ratio * n_groups)`` groups (at least one, and at least one
group is left for training), so the image ratio is close to ``test_ratio`` when groups have similar sizes.

Repeat ``k`` draws its permutation from ``numpy.random.default_rng(SeedSequence(seed).spawn(n)[k])`` over the
sorted group ids: the files are the same on every run and platform, and repeat ``k`` does not depend on ``n``.

For pair datasets, a side holds the image ids of its groups' pairs; :meth:`Split.apply` keeps the pairs whose
two images are on that side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from agiqa.data.sample import Dataset

FORMAT = "agiqa-splits/1"


class SplitError(ValueError):
    """A split cannot be made from, or does not fit, a dataset."""


@dataclass(frozen=True)
class Split:
    """One train/test partition of a dataset's image ids.

    Attributes:
        dataset: Name of the dataset it was made for.
        seed: Seed of the whole series of repeats.
        repeat: Index of this repeat in the series.
        test_ratio: Requested share of groups on the test side.
        train: Image ids on the training side, sorted.
        test: Image ids on the test side, sorted.
    """

    dataset: str
    seed: int
    repeat: int
    test_ratio: float
    train: tuple[str, ...]
    test: tuple[str, ...]

    def apply(self, dataset: Dataset) -> tuple[Dataset, Dataset]:
        """The training and test parts of ``dataset`` (samples and pairs), problems left with neither.

        Raises:
            SplitError: When the split names ids that are not in ``dataset``.
        """
        check_ids(self, dataset, source=f"split {self.repeat}")
        return _subset(dataset, set(self.train), "train"), _subset(dataset, set(self.test), "test")


def _subset(dataset: Dataset, ids: set[str], side: str) -> Dataset:
    return replace(
        dataset,
        name=f"{dataset.name}[{side}]",
        samples=[s for s in dataset.samples if s.image_id in ids],
        pairs=[p for p in dataset.pairs if p.id_a in ids and p.id_b in ids],
        problems=[],
    )


def dataset_ids(dataset: Dataset) -> set[str]:
    """Every image id of the dataset's samples and pairs."""
    return {s.image_id for s in dataset.samples} | {i for p in dataset.pairs for i in (p.id_a, p.id_b)}


def group_members(dataset: Dataset) -> dict[str, list[str]]:
    """Image ids per group, from samples and pairs.

    Raises:
        SplitError: When one image id belongs to two groups (it could then end up on both sides).
    """
    owner: dict[str, str] = {}
    members: dict[str, list[str]] = {}

    def add(image_id: str, group: str) -> None:
        known = owner.setdefault(image_id, group)
        if known != group:
            raise SplitError(
                f"{dataset.name}: image {image_id!r} belongs to groups {known!r} and {group!r};"
                " grouped splits need each image in one group (fix the dataset's group ids)"
            )
        if image_id not in members.setdefault(group, []):
            members[group].append(image_id)

    for s in dataset.samples:
        add(s.image_id, s.group_id)
    for p in dataset.pairs:
        add(p.id_a, p.group_id)
        add(p.id_b, p.group_id)
    return members


def make_splits(dataset: Dataset, n: int = 10, test_ratio: float = 0.2, seed: int = 0) -> list[Split]:
    """``n`` seeded random train/test splits of ``dataset`` grouped by prompt.

    Args:
        dataset: Samples and/or pairs with group ids.
        n: Number of repeats.
        test_ratio: Share of groups put on the test side (0.2 gives the field's 4:1 split).
        seed: Seed of the series.

    Raises:
        SplitError: For a ratio outside (0, 1), ``n < 1`` or fewer than two groups.
    """
    if not 0 < test_ratio < 1:
        raise SplitError(f"`test_ratio` must be between 0 and 1 (exclusive), got {test_ratio}")
    if n < 1:
        raise SplitError(f"`n` must be at least 1, got {n}")
    members = group_members(dataset)
    groups = sorted(members)
    if len(groups) < 2:
        raise SplitError(f"{dataset.name}: {len(groups)} group(s); a grouped split needs at least two")
    n_test = min(max(1, round(test_ratio * len(groups))), len(groups) - 1)
    splits = []
    for repeat, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        order = np.random.default_rng(child).permutation(len(groups))
        test_groups = {groups[i] for i in order[:n_test]}
        test = sorted(i for g in test_groups for i in members[g])
        train = sorted(i for g in groups if g not in test_groups for i in members[g])
        splits.append(Split(dataset.name, seed, repeat, test_ratio, tuple(train), tuple(test)))
    return splits


def save_splits(splits: list[Split], path: str | Path) -> Path:
    """Write a series of splits to one JSON file (parents created).

    Returns:
        The path written.
    """
    if not splits:
        raise SplitError("no splits to save")
    path = Path(path)
    head = splits[0]
    doc = {
        "format": FORMAT,
        "dataset": head.dataset,
        "seed": head.seed,
        "test_ratio": head.test_ratio,
        "n": len(splits),
        "splits": [{"repeat": s.repeat, "train": list(s.train), "test": list(s.test)} for s in splits],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def load_splits(path: str | Path, dataset: Dataset | None = None) -> list[Split]:
    """Read splits written by :func:`save_splits`, optionally checking them against ``dataset``.

    Raises:
        SplitError: Naming the file when it is not a split file, was made for another dataset, or names image
            ids that ``dataset`` does not have (a stale file: make the splits again).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SplitError(f"{path}: cannot read split file: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SplitError(f'{path}: not an agiqa split file (expected "format": {FORMAT!r})')
    try:
        splits = [
            Split(
                doc["dataset"],
                int(doc["seed"]),
                int(s["repeat"]),
                float(doc["test_ratio"]),
                tuple(s["train"]),
                tuple(s["test"]),
            )
            for s in doc["splits"]
        ]
    except (KeyError, TypeError, ValueError) as err:
        raise SplitError(f"{path}: malformed split file, missing or bad field {err}") from None
    if dataset is not None:
        if dataset.name != doc["dataset"]:
            raise SplitError(f"{path}: splits were made for dataset {doc['dataset']!r}, not {dataset.name!r}")
        for s in splits:
            check_ids(s, dataset, source=str(path))
    return splits


def check_ids(split: Split, dataset: Dataset, source: str) -> None:
    """Raise a :class:`SplitError` naming ``source`` and the ids of ``split`` missing from ``dataset``."""
    unknown = sorted((set(split.train) | set(split.test)) - dataset_ids(dataset))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise SplitError(
            f"{source}: repeat {split.repeat} names {len(unknown)} image id(s) not in dataset"
            f" {dataset.name!r}:"
            f" {shown}. The split file is stale; make it again with `agiqa splits make`."
        )


__all__ = [
    "Split",
    "SplitError",
    "check_ids",
    "dataset_ids",
    "group_members",
    "load_splits",
    "make_splits",
    "save_splits",
]


def shipped_splits(dataset: str) -> Path | None:
    """The splits of ``dataset`` that ship with agiqa (``agiqa/splits/<dataset>.json``), or None."""
    path = Path(str(resources.files("agiqa.splits").joinpath(f"{dataset}.json")))
    return path if path.is_file() else None


def stored_splits(dataset: Dataset, path: str | Path, n: int = 10, seed: int = 0) -> list[Split]:
    """The first ``n`` splits stored at ``path``, made with ``make_splits`` and written there when it is missing.

    Raises:
        SplitError: When the stored file does not fit the dataset or holds fewer than ``n`` splits.
    """
    path = Path(path)
    if not path.is_file():
        save_splits(make_splits(dataset, n=n, seed=seed), path)
    splits = load_splits(path, dataset)
    if len(splits) < n:
        raise SplitError(
            f"{path}: holds {len(splits)} splits, {n} asked; ask for at most {len(splits)}, or name a file that does "
            f"not exist yet to make {n} afresh"
        )
    return splits[:n]
