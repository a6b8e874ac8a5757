"""Aggregation of per-split metrics into mean ± std tables, rendered with rich or markdown, or written as CSV and JSON.

The long table has one row per (dimension, metric) with ``mean``, ``std`` (sample std, ``ddof=1``; undefined
for a single split), ``n`` (splits with a finite value) and ``n_failed`` (splits where the metric was NaN;
their reasons are in the per-split results). NaN values are left out of the mean, never averaged in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from agiqa.eval.metrics import KRCC, PLCC, RMSE, SRCC, PairwiseAccuracy, PreferenceAccuracy

COLUMNS = ["dimension", "metric", "mean", "std", "n", "n_failed"]
HIGHER_IS_BETTER = {
    cls.name: cls.higher_is_better for cls in (SRCC, KRCC, PLCC, RMSE, PairwiseAccuracy, PreferenceAccuracy)
} | {"plcc_logistic": PLCC.higher_is_better}

PerSplit = Mapping[str, Mapping[str, float]]
CIs = Mapping[str, Mapping[str, Mapping[str, Any]]]


def aggregate(results: Sequence[PerSplit]) -> pd.DataFrame:
    """Mean ± std over splits of every (dimension, metric).

    Args:
        results: One ``{dimension: {metric: value}}`` per split (``agiqa.eval.evaluate.metric_table``).

    Returns:
        A long table with columns ``dimension, metric, mean, std, n, n_failed`` in first-seen order.
    """
    values: dict[tuple[str, str], list[float]] = {}
    for res in results:
        for dim, row in res.items():
            for metric, v in row.items():
                values.setdefault((dim, metric), []).append(float(v))
    rows = []
    for (dim, metric), vs in values.items():
        arr = np.asarray(vs)
        ok = arr[np.isfinite(arr)]
        mean = float(ok.mean()) if ok.size else math.nan
        std = float(ok.std(ddof=1)) if ok.size > 1 else math.nan
        rows.append((dim, metric, mean, std, int(ok.size), int(arr.size - ok.size)))
    return pd.DataFrame(rows, columns=COLUMNS)


def single(result: PerSplit, ci: CIs | None = None) -> pd.DataFrame:
    """The table of one evaluation (``n`` = 1, no std), plus ``ci_low`` / ``ci_high`` when ``ci`` is given.

    Args:
        result: ``{dimension: {metric: value}}``.
        ci: Optional ``{dimension: {metric: {"low": ..., "high": ...}}}`` (``ConfidenceInterval.as_dict``).
    """
    table = aggregate([result])
    if ci is not None:
        bounds = [(ci.get(d, {}).get(m) or {}) for d, m in zip(table["dimension"], table["metric"], strict=True)]
        table["ci_low"] = [b.get("low", math.nan) for b in bounds]
        table["ci_high"] = [b.get("high", math.nan) for b in bounds]
    return table


def format_cell(mean: float, std: float = math.nan, digits: int = 4) -> str:
    """``0.8123 ± 0.0120``, ``0.8123`` without a std, ``n/a`` for NaN."""
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def _cell(row: pd.Series, digits: int) -> str:
    text = format_cell(row["mean"], row["std"], digits)
    low, high = row.get("ci_low", math.nan), row.get("ci_high", math.nan)
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.{digits - 1}f}, {high:.{digits - 1}f}]"
    return text


def wide(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Metrics as rows, dimensions as columns, cells as ``mean ± std`` (and ``[ci_low, ci_high]``) strings."""
    cells = table.assign(cell=[_cell(row, digits) for _, row in table.iterrows()])
    out = cells.pivot(index="metric", columns="dimension", values="cell")
    out = out.reindex(index=list(dict.fromkeys(table["metric"])), columns=list(dict.fromkeys(table["dimension"])))
    return out.fillna("")


def rich_table(table: pd.DataFrame, title: str = "") -> Table:
    """A rich table of :func:`aggregate` or :func:`single` output: a row per metric, a column per dimension.

    Arrows give each metric's direction (``higher_is_better`` of its class).
    """
    grid = wide(table)
    n_splits = int((table["n"] + table["n_failed"]).max()) if len(table) else 0
    caption = f"mean ± std over {n_splits} splits" if n_splits > 1 else None
    if "ci_low" in table.columns:
        caption = "[95% bootstrap confidence interval]"
    out = Table(title=title or None, caption=caption)
    out.add_column("metric", style="bold")
    for dim in grid.columns:
        out.add_column(str(dim), justify="right")
    for metric, row in grid.iterrows():
        arrow = "↑" if HIGHER_IS_BETTER.get(str(metric), True) else "↓"
        out.add_row(f"{metric} {arrow}", *map(str, row.tolist()))
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A small markdown table of a :func:`wide` frame (no ``tabulate`` dependency)."""
    cols = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and inf become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def write_report(
    table: pd.DataFrame, out_dir: str | Path, stem: str = "metrics", extra: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``STEM.csv`` (long table) and ``STEM.json`` (rows plus ``extra``; NaN as null) to ``out_dir``.

    Returns:
        The CSV and JSON paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / f"{stem}.csv", out / f"{stem}.json"
    table.to_csv(csv_path, index=False)
    doc = {"table": table.to_dict(orient="records"), **(extra or {})}
    json_path.write_text(json.dumps(_clean(doc), indent=1) + "\n", encoding="utf-8")
    return csv_path, json_path


__all__ = ["aggregate", "format_cell", "markdown_table", "rich_table", "single", "wide", "write_report"]
