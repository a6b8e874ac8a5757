"""Aggregation of per-split metrics into mean ± std tables (rich, CSV, JSON) and the scatter plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rich.console import Console

from agiqa.eval import plots, report

PER_SPLIT = [
    {"quality": {"srcc": 0.80, "rmse": 0.50}, "alignment": {"srcc": 0.70}},
    {"quality": {"srcc": 0.84, "rmse": 0.40}, "alignment": {"srcc": float("nan")}},
    {"quality": {"srcc": 0.86, "rmse": 0.45}, "alignment": {"srcc": 0.74}},
]


def _row(table: pd.DataFrame, dim: str, metric: str) -> pd.Series:
    return table[(table["dimension"] == dim) & (table["metric"] == metric)].iloc[0]


def test_aggregate_mean_std_and_failed_splits() -> None:
    table = report.aggregate(PER_SPLIT)
    assert list(table.columns) == report.COLUMNS
    q = _row(table, "quality", "srcc")
    assert q["mean"] == pytest.approx(np.mean([0.80, 0.84, 0.86]))
    assert q["std"] == pytest.approx(np.std([0.80, 0.84, 0.86], ddof=1))
    assert (q["n"], q["n_failed"]) == (3, 0)
    a = _row(table, "alignment", "srcc")
    assert a["mean"] == pytest.approx(0.72) and (a["n"], a["n_failed"]) == (2, 1)
    one = report.aggregate(PER_SPLIT[:1])
    assert math.isnan(_row(one, "quality", "srcc")["std"])


def test_rich_table_shows_mean_std_and_directions() -> None:
    console = Console(record=True, width=120)
    console.print(report.rich_table(report.aggregate(PER_SPLIT), title="toy"))
    text = console.export_text()
    assert "0.8333 ± 0.0306" in text
    assert "rmse ↓" in text and "srcc ↑" in text
    assert "over 3 splits" in text


def test_single_with_confidence_interval() -> None:
    table = report.single({"quality": {"srcc": 0.8}}, ci={"quality": {"srcc": {"low": 0.75, "high": 0.85}}})
    assert table.loc[0, "ci_low"] == 0.75
    assert report.wide(table).loc["srcc", "quality"] == "0.8000 [0.750, 0.850]"
    assert report.format_cell(float("nan")) == "n/a"


def test_write_report_csv_and_json(tmp_path: Path) -> None:
    table = report.aggregate(PER_SPLIT)
    csv_path, json_path = report.write_report(table, tmp_path / "out", extra={"dataset": "toy"})
    back = pd.read_csv(csv_path)
    assert back["mean"].tolist() == pytest.approx(table["mean"].tolist())
    doc = json.loads(json_path.read_text())  # strict JSON: NaN must have become null
    assert doc["dataset"] == "toy" and len(doc["table"]) == len(table)
    assert "NaN" not in json_path.read_text()


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()


def test_scatter_plot_writes_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    out = plots.scatter_plot(x, np.tanh(x) + rng.normal(scale=0.2, size=200), tmp_path / "a" / "s.png", title="t")
    _assert_png(out)
    # Degenerate input still gives a plot, without a curve.
    _assert_png(plots.scatter_plot([1, 1, 1, 1], [1, 2, 3, 4], tmp_path / "flat.png"))
