"""Which rows and pairs of the image table a run trains and validates on.

* **Rows**: the training side of the configured split (or every image), minus a grouped validation part
  (``carve_validation``: whole same-prompt groups are held out, so no prompt is on both sides).
* **Pairs**: rankings arrive from the readers already expanded into untied same-prompt ``PreferencePair``s; MOS
  datasets are turned into pairs here (every same-prompt pair whose MOS differ by more than ``tie_margin``) when a
  preference objective trains on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agiqa.data.sample import Dataset
from agiqa.data.splits import load_splits
from agiqa.train.config import TrainConfig
from agiqa.train.table import ImageTable


def split_rows(config: TrainConfig, dataset: Dataset, table: ImageTable) -> tuple[list[int], list[int]]:
    """Training and validation rows: the configured split's training side, minus a grouped validation part."""
    d = config.data
    row = table.row
    if d.splits:
        splits = load_splits(d.splits, dataset)
        if not 0 <= d.split_index < len(splits):
            raise ValueError(
                f"{config.source}: data.split_index={d.split_index} but {d.splits} has {len(splits)} splits"
            )
        train_ids = set(splits[d.split_index].train)
        rows = [row[i] for i in table.ids if i in train_ids]
    else:
        rows = list(range(len(table)))
    return carve_validation(table, rows, d.val_fraction, config.train.seed)


def carve_validation(table: ImageTable, rows: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out ``fraction`` of the groups among ``rows`` for validation (none when 0 or one group)."""
    groups = sorted({table.groups[r] for r in rows})
    if fraction <= 0 or len(groups) < 2:
        return rows, []
    rng = np.random.default_rng(seed)
    n_val = min(max(1, round(fraction * len(groups))), len(groups) - 1)
    val_groups = {groups[i] for i in rng.permutation(len(groups))[:n_val]}
    return [r for r in rows if table.groups[r] not in val_groups], [r for r in rows if table.groups[r] in val_groups]


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


def _subset_pairs(pairs: Pairs, rows: set[int]) -> Pairs:
    keep = np.array([a in rows and b in rows for a, b in zip(pairs.a, pairs.b, strict=True)], dtype=bool)
    return Pairs(
        pairs.a[keep], pairs.b[keep], pairs.label[keep], [d for d, k in zip(pairs.dim, keep, strict=True) if k]
    )


def _concat(*parts: Pairs) -> Pairs:
    return Pairs(
        np.concatenate([p.a for p in parts]),
        np.concatenate([p.b for p in parts]),
        np.concatenate([p.label for p in parts]),
        [d for p in parts for d in p.dim],
    )


def training_pairs(
    config: TrainConfig, dataset: Dataset, table: ImageTable, rows: Sequence[int], dims: Sequence[str]
) -> Pairs:
    """Pairs among ``rows``: the dataset's own pairs (first trained dimension) + same-prompt MOS pairs."""
    row_set = set(rows)
    parts = []
    if dataset.pairs:
        parts.append(_subset_pairs(dataset_pairs(dataset, table, dims[0]), row_set))
    mos_dims = [d for d in dims if d in table.labels]
    if mos_dims:
        parts.append(mos_pairs(table, rows, mos_dims, config.train.tie_margin, config.train.seed))
    return _concat(*parts) if parts else Pairs(np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32), [])
