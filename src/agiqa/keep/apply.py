"""Percentile columns and ``--keep`` on a score table: which rows are kept, where they are written and copied.

What ``agiqa score --percentiles --keep EXPR`` does once the table is written:

* ``--percentiles`` adds ``<dim>_pct`` (0-100 against the model's reference) after the score columns.
* ``--keep EXPR`` adds a ``kept`` column (true / false) to ``--out``, which keeps every row; ``--kept-out FILE``
  writes the kept rows alone (same columns); ``--copy-to DIR`` / ``--link-to DIR`` copies / symlinks the kept
  images into ``DIR``. A row with an ``error`` is never kept, whatever the expression says.

In ``DIR`` each image keeps its path relative to the working folder when that path is relative and stays inside;
other images (absolute paths, ``..``) are placed by file name. Two kept images that would land on one name are
told apart by their row number (``row000012-a.png``). A file already in ``DIR`` with other content is never
overwritten (the error names it); the same file (or the same link) is left as it is, so a rerun is harmless.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from agiqa.io import read_table, table_format, write_table
from agiqa.keep.expression import KeepRule, parse_keep
from agiqa.models.reference import NoReferenceError, Reference

KEPT_COLUMN = "kept"


def pct_column(dim: str) -> str:
    """Name of the percentile column of a dimension."""
    return f"{dim}_pct"


@dataclass(frozen=True)
class KeepPlan:
    """What to add to a score table once it is written, checked before any scoring starts.

    Attributes:
        dimensions: The model's dimension names (score columns).
        reference: The model's reference (None when it has none).
        percentiles: Add ``<dim>_pct`` columns.
        rule: The ``--keep`` expression (None: keep nothing, add no ``kept`` column).
        kept_out: File for the kept rows alone.
        place_in: Folder for the kept images.
        link: Symlink instead of copying into ``place_in``.
    """

    dimensions: tuple[str, ...]
    reference: Reference | None
    percentiles: bool = False
    rule: KeepRule | None = None
    kept_out: Path | None = None
    place_in: Path | None = None
    link: bool = False

    @property
    def active(self) -> bool:
        """Whether the plan changes anything."""
        return self.percentiles or self.rule is not None

    def added_columns(self) -> list[str]:
        """Columns the plan adds to the table."""
        cols = [pct_column(d) for d in self.dimensions if self.percentiles and self._has_reference(d)]
        return cols + ([KEPT_COLUMN] if self.rule is not None else [])

    def _has_reference(self, dim: str) -> bool:
        return self.reference is not None and dim in self.reference.quantiles


def plan_keep(
    dimensions: Sequence[str],
    reference: Reference | None,
    *,
    percentiles: bool = False,
    keep: str | None = None,
    kept_out: str | Path | None = None,
    copy_to: str | Path | None = None,
    link_to: str | Path | None = None,
    out: str | Path | None = None,
    input_columns: Sequence[str] = (),
    model_name: str = "the model",
) -> KeepPlan:
    """Check the options and parse the expression; every mistake is caught here, before scoring.

    Args:
        dimensions: The model's dimensions.
        reference: Its reference distribution (None when its card has none).
        percentiles: Add percentile columns.
        keep: The ``--keep`` expression.
        kept_out: Where to write the kept rows alone.
        copy_to: Folder to copy the kept images into.
        link_to: Folder to symlink the kept images into.
        out: The score table being written (``kept_out`` must differ from it).
        input_columns: Columns copied from the input table (they must not clash with the added ones).
        model_name: For messages.

    Raises:
        KeepError: The expression is wrong (the message points at the column).
        NoReferenceError: Percentiles asked of a model without a reference.
        ValueError: Options that do not go together, or a clash of column names.
    """
    if percentiles and reference is None:
        raise NoReferenceError(
            f"--percentiles: model {model_name!r} has no reference distribution in its card; models trained with "
            "`agiqa train` get one (the quantiles of their predictions on their training images)"
        )
    if keep is None and (kept_out or copy_to or link_to):
        raise ValueError("--kept-out, --copy-to and --link-to need --keep EXPR (which rows to keep)")
    if copy_to and link_to:
        raise ValueError("give --copy-to or --link-to, not both")
    if kept_out is not None:
        table_format(kept_out)
        if out is not None and Path(kept_out).resolve() == Path(out).resolve():
            raise ValueError(f"--kept-out {kept_out} is the --out file; choose another file for the kept rows")
    rule = parse_keep(keep, dimensions, reference) if keep is not None else None
    place = copy_to or link_to
    plan = KeepPlan(
        tuple(dimensions),
        reference,
        percentiles,
        rule,
        Path(kept_out) if kept_out is not None else None,
        Path(place) if place else None,
        bool(link_to),
    )
    clash = sorted(set(plan.added_columns()) & set(input_columns))
    if clash:
        raise ValueError(f"the input table has column(s) {clash}, which the score table adds; rename them")
    return plan


@dataclass(frozen=True)
class KeepSummary:
    """What applying a plan did: rows kept of how many, images placed, files written."""

    kept: int
    total: int
    placed: int
    kept_out: Path | None
    place_in: Path | None


def percentile_columns(frame: pd.DataFrame, dimensions: Sequence[str], reference: Reference) -> dict[str, np.ndarray]:
    """``{<dim>_pct: values}`` of the dimensions that have a reference (NaN where the score is missing)."""
    return {
        pct_column(d): reference.percentile(d, pd.to_numeric(frame[d], errors="coerce").to_numpy(np.float64))
        for d in dimensions
        if d in reference.quantiles
    }


def keep_mask(
    frame: pd.DataFrame, rule: KeepRule, dimensions: Sequence[str], reference: Reference | None
) -> np.ndarray:
    """Rows of a score table that ``rule`` keeps; rows with an ``error`` never are."""
    columns = {d: pd.to_numeric(frame[d], errors="coerce").to_numpy(np.float64) for d in dimensions}
    if reference is not None:
        columns |= percentile_columns(frame, dimensions, reference)
    mask = rule.mask(columns)
    if "error" in frame.columns:
        mask &= frame["error"].fillna("").astype(str).str.strip().to_numpy() == ""
    return mask


def apply_keep(plan: KeepPlan, out: str | Path, files: Sequence[str | Path]) -> KeepSummary:
    """Add the plan's columns to the score table ``out`` (rewritten atomically), write and place the kept rows.

    Args:
        plan: From ``plan_keep``.
        out: The score table (one row per item, in item order).
        files: Where each row's image is (for copying / linking).
    """
    out = Path(out)
    frame = read_table(out)
    if len(frame) != len(files):
        raise ValueError(f"{out}: {len(frame)} rows for {len(files)} images; score the same items again")
    for dim in plan.dimensions:
        frame[dim] = pd.to_numeric(frame[dim], errors="coerce")
    last = max(frame.columns.get_loc(d) for d in plan.dimensions) + 1
    if plan.percentiles and plan.reference is not None:
        for k, (name, values) in enumerate(percentile_columns(frame, plan.dimensions, plan.reference).items()):
            frame.insert(last + k, name, values)
    mask = np.zeros(len(frame), dtype=bool)
    if plan.rule is not None:
        mask = keep_mask(frame, plan.rule, plan.dimensions, plan.reference)
        frame[KEPT_COLUMN] = mask
    write_table(frame, out)
    if plan.kept_out is not None:
        write_table(frame[mask].reset_index(drop=True), plan.kept_out)
    placed = 0
    if plan.place_in is not None:
        kept_rows = np.flatnonzero(mask)
        placed = place_images([Path(files[i]) for i in kept_rows], kept_rows.tolist(), plan.place_in, plan.link)
    return KeepSummary(int(mask.sum()), len(frame), placed, plan.kept_out, plan.place_in)


def destinations(files: Sequence[Path], rows: Sequence[int]) -> list[PurePath]:
    """Where each file goes inside the target folder (see module docstring)."""
    names: list[PurePath] = []
    for f in files:
        inside = not f.is_absolute() and ".." not in f.parts
        names.append(PurePath(*f.parts) if inside else PurePath(f.name))
    counts: dict[PurePath, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    return [n.with_name(f"row{r:06d}-{n.name}") if counts[n] > 1 else n for n, r in zip(names, rows, strict=True)]


def place_images(files: Sequence[Path], rows: Sequence[int], folder: Path, link: bool) -> int:
    """Copy (or symlink) ``files`` into ``folder``; returns how many were placed or already there.

    Raises:
        FileExistsError: A different file already has a target's name.
    """
    for src, rel in zip(files, destinations(files, rows), strict=True):
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if link:
            target = src.resolve()
            if dest.is_symlink() and Path(os.readlink(dest)) == target:
                continue
            if dest.exists() or dest.is_symlink():
                raise FileExistsError(
                    f"{dest} exists and is not a link to {target}; remove it or choose another folder"
                )
            dest.symlink_to(target)
        else:
            if dest.exists():
                if dest.is_file() and filecmp.cmp(src, dest, shallow=False):
                    continue
                raise FileExistsError(
                    f"{dest} exists with other content than {src}; remove it or choose another folder"
                )
            shutil.copy2(src, dest)
    return len(files)
