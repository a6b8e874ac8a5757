"""Label files as the readers meet them: find them, read them as tables, parse scores, report bad and duplicate rows
by the row number an editor shows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from agiqa.data.datasets import DatasetError
from agiqa.data.sample import Problem


def find_file(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``root / candidate`` that exists.

    Raises:
        FileNotFoundError: Naming every path tried and what the file is.
    """
    for name in candidates:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"{what} not found; looked for {tried}")


def first_dir(root: Path, candidates: Sequence[str]) -> Path:
    """The first existing folder among ``root / candidate``, else ``root`` itself."""
    return next((root / c for c in candidates if (root / c).is_dir()), root)


def read_label_table(path: Path, required: Sequence[str] = (), *, header: bool = True) -> pd.DataFrame:
    """Read a CSV / TSV / XLSX / JSON / JSONL / parquet table and check that ``required`` columns exist.

    Args:
        path: The table file; the format follows its suffix.
        required: Columns that must be present (ignored when ``header`` is False).
        header: False for header-less spreadsheets; columns are then numbered 0, 1, ...

    Raises:
        DatasetError: The file cannot be parsed, is empty, or lacks a required column (named in the message).
    """
    suffix = path.suffix.lower()
    head = 0 if header else None
    try:
        if suffix in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", header=head)
        elif suffix in (".xlsx", ".xls"):
            df = pd.read_excel(path, header=head)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".json":
            df = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise DatasetError(f"{path}: unknown table format {suffix!r}; use .csv, .tsv, .xlsx, .json, .jsonl")
    except (ValueError, OSError, pd.errors.ParserError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot be read as a {suffix} table ({err})") from err
    if df.empty:
        raise DatasetError(f"{path}: the table has no rows")
    missing = [c for c in required if c not in df.columns] if header else []
    if missing:
        raise DatasetError(
            f"{path}: missing column {', '.join(map(repr, missing))} "
            f"(found {', '.join(map(str, df.columns))}); the file needs columns {', '.join(required)}"
        )
    return df


def row_where(path: Path, index: int, header: bool = True) -> str:
    """Where row ``index`` of a table is, as its editor numbers it.

    ``row N`` of a spreadsheet or CSV (counting the header), ``line N`` of a JSONL file, ``entry N``
    (0-based) of a JSON list or parquet file.
    """
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return f"{path.name} line {index + 1}"
    if suffix in (".json", ".parquet"):
        return f"{path.name} entry {index}"
    return f"{path.name} row {index + (2 if header else 1)}"


def parse_scores(
    df: pd.DataFrame, columns: Sequence[str], path: Path, problems: list[Problem], *, header: bool = True
) -> tuple[pd.DataFrame, pd.Series]:
    """Parse score columns as floats; a row with an empty or unparsable score is rejected with a problem.

    Returns:
        The parsed columns and a boolean mask of the rows to keep.
    """
    values = df[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    finite = np.isfinite(values.to_numpy())
    for i in np.flatnonzero(~finite.all(axis=1)):
        bad = [f"{c}={df[c].iloc[i]!r}" for c, ok in zip(columns, finite[i], strict=True) if not ok]
        problems.append(
            Problem("bad-label", row_where(path, i, header), f"empty or unparsable {', '.join(bad)}; row left out")
        )
    return values, pd.Series(finite.all(axis=1), index=df.index)


def drop_duplicates(keys: pd.Series, path: Path, problems: list[Problem], *, header: bool = True) -> pd.Series:
    """Report every key that appears more than once; all copies are left out (which one is right is unknown).

    Returns:
        Boolean mask of the rows to keep.
    """
    dup = keys.duplicated(keep=False)
    for key, rows in keys[dup].groupby(keys[dup], sort=False):
        where = ", ".join(row_where(path, int(keys.index.get_loc(i)), header) for i in rows.index)
        problems.append(
            Problem("duplicate", where, f"{key!r} appears {len(rows)} times; all copies left out, fix the file")
        )
    return ~dup
