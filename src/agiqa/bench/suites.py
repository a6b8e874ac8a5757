"""Prompt suites: the prompts generators are compared on, with the columns that group them.

A suite is a table ``id, prompt`` plus grouping columns (PartiPrompts' ``category`` and ``challenge``, HPSv2's
style, AGIQA-3K's ``style``), read from ``.csv``, ``.tsv``, ``.jsonl``, ``.json`` (a list of objects, or a list of
prompt strings as HPSv2's ``benchmark/*.json``) or ``.parquet``. Without an ``id`` column the ids are the 0-based
row numbers (what HPSv2's ``{idx:05d}.jpg`` images are named by). Column names are matched without regard to case.

Shipped suites (package data, licences in ``agiqa/bench/prompts/NOTICE.md``):

* ``partiprompts``: PartiPrompts, 1,632 prompts, ids ``0..1631`` in file order, groups ``category`` and
  ``challenge`` (Apache-2.0).
* ``imagereward``: the ImageReward benchmark's 100 prompts, ids as in the file (``005695-0057`` ...), no groups
  (Apache-2.0).
"""

from __future__ import annotations

import csv
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from agiqa.io import read_table


@dataclass(frozen=True)
class PromptSuite:
    """Prompts to compare generators on.

    Attributes:
        name: Shipped name or file path.
        table: Columns ``id``, ``prompt`` and the grouping columns, as text; one row per prompt.
        groups: Grouping columns reported on (a subset of the table's other columns).
    """

    name: str
    table: pd.DataFrame
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def prompts(self) -> dict[str, str]:
        """``{id: prompt}``."""
        return dict(zip(self.table["id"], self.table["prompt"], strict=True))


@dataclass(frozen=True)
class _Shipped:
    file: str
    rename: dict[str, str]
    groups: tuple[str, ...]


SHIPPED = {
    "partiprompts": _Shipped(
        "partiprompts.tsv",
        {"Prompt": "prompt", "Category": "category", "Challenge": "challenge", "Note": "note"},
        ("category", "challenge"),
    ),  # fmt: skip
    "imagereward": _Shipped("imagereward-benchmark.json", {}, ()),
}


def shipped_suites() -> dict[str, Path]:
    """``{name: file}`` of the suites that ship with agiqa."""
    root = Path(str(resources.files("agiqa.bench") / "prompts"))
    return {name: root / s.file for name, s in SHIPPED.items()}


def read_suite_table(path: Path) -> pd.DataFrame:
    """A suite file as a text table (``.tsv`` is read verbatim: quotes inside prompts are kept).

    Raises:
        FileNotFoundError: No such file.
        ValueError: An unreadable format or content.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prompt suite file")
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list) or not data:
            raise ValueError(f"{path}: a .json suite must be a list of prompts or of objects with 'prompt'")
        if all(isinstance(x, str) for x in data):
            return pd.DataFrame({"prompt": data})
        if not all(isinstance(x, dict) for x in data):
            raise ValueError(f"{path}: a .json suite must be a list of prompt strings or a list of objects")
        return pd.DataFrame(data).fillna("").astype(str)
    return read_table(path)


def load_suite(name_or_path: str | Path, groups: Sequence[str] | None = None) -> PromptSuite:
    """A shipped suite by name, or a suite table.

    Args:
        name_or_path: ``partiprompts``, ``imagereward``, or a file (see module docstring).
        groups: Grouping columns to report on (default: the shipped suite's, or every other column of a file).

    Raises:
        FileNotFoundError: Neither a file nor a shipped name (the message lists the names).
        ValueError: No ``prompt`` column, an empty prompt, a repeated id, or an unknown grouping column.
    """
    path = Path(name_or_path).expanduser()
    shipped = SHIPPED.get(str(name_or_path))
    if shipped is not None and not path.exists():
        path = shipped_suites()[str(name_or_path)]
    elif not path.exists():
        close = difflib.get_close_matches(str(name_or_path), SHIPPED, n=2)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise FileNotFoundError(f"{name_or_path}: no such suite file and no shipped suite of that name.{hint} "
                                f"Shipped: {', '.join(SHIPPED)}")  # fmt: skip
    table = read_suite_table(path)
    if shipped is not None:
        table = table.rename(columns=shipped.rename)
    table = _standard_columns(table, path)
    default = shipped.groups if shipped is not None else [c for c in table.columns if c not in ("id", "prompt")]
    chosen = tuple(default if groups is None else groups)
    unknown = [g for g in chosen if g not in table.columns or g in ("id", "prompt")]
    if unknown:
        others = [c for c in table.columns if c not in ("id", "prompt")]
        raise ValueError(f"{path}: no grouping column {unknown}; the suite has {others or 'none'}")
    return PromptSuite(str(name_or_path), table, chosen)


def _standard_columns(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    lower = {c: str(c).strip().lower() for c in table.columns}
    for key in ("id", "prompt"):
        named = [c for c, low in lower.items() if low == key]
        if len(named) > 1:
            raise ValueError(f"{path}: several columns are named {key!r} ({named}); keep one")
        if named:
            table = table.rename(columns={named[0]: key})
    if "prompt" not in table.columns:
        raise ValueError(f"{path}: a prompt suite needs a 'prompt' column (found {list(table.columns)})")
    table = table.astype(str)
    if "id" not in table.columns:
        table.insert(0, "id", [str(k) for k in range(len(table))])
    table["id"] = table["id"].str.strip()
    bad = table.index[(table["prompt"].str.strip() == "") | (table["id"] == "")]
    if len(bad):
        raise ValueError(f"{path}: row {int(bad[0]) + 1} has an empty id or prompt")
    repeated = table["id"][table["id"].duplicated()]
    if len(repeated):
        raise ValueError(f"{path}: id {repeated.iloc[0]!r} appears more than once; ids must be unique")
    return table.reset_index(drop=True)
