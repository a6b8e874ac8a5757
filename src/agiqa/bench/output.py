"""What a bench writes: ``bench.md`` (tables), ``bench.json`` (everything, machine-readable), ``bench.png`` (means
with their intervals, one panel per dimension). The chart is drawn on matplotlib's Agg canvas (no ``pyplot``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agiqa.bench.stats import OVERALL, BenchStats
from agiqa.eval.report import markdown_table


def _num(x: Any, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _md(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table whose first column is ``header[0]``."""
    frame = pd.DataFrame([r[1:] for r in rows], columns=header[1:], index=pd.Index([r[0] for r in rows]))
    return markdown_table(frame.rename_axis(header[0]))


def _cell(row: pd.Series) -> str:
    return f"{_num(row['mean'])} [{_num(row['low'])}, {_num(row['high'])}]"


def markdown(stats: BenchStats, title: str, notes: list[str]) -> str:
    """The tables of every dimension: ranking, per group, win rates."""
    level = round(stats.confidence * 100)
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + [""]
    for dim, up in stats.higher_is_better.items():
        rows = stats.means[stats.means["dimension"] == dim]
        overall = rows[rows["group_column"] == OVERALL].sort_values("rank")
        lines += [f"## {dim} ({'higher' if up else 'lower'} is better)", ""]
        table = [
            [str(r["rank"]), r["generator"], _num(r["mean"]), f"[{_num(r['low'])}, {_num(r['high'])}]",
             str(r["n_prompts"]), str(r["n_images"])]
            for _, r in overall.iterrows()
        ]  # fmt: skip
        header = ["rank", "generator", "mean", f"{level}% CI (prompts)", "prompts", "images"]
        lines += [_md(header, table), ""]
        order = overall["generator"].tolist()
        for column in [c for c in rows["group_column"].unique() if c != OVERALL]:
            part = rows[rows["group_column"] == column]
            values = list(dict.fromkeys(part["group"]))
            cells = {(r["generator"], r["group"]): _cell(r) for _, r in part.iterrows()}
            body = [[g, *(cells.get((g, v), "-") for v in values)] for g in order]
            lines += [f"### {dim} by {column} (mean [{level}% CI])", "", _md(["generator", *values], body)]
            lines.append("")
        wins = stats.win_rates[stats.win_rates["dimension"] == dim]
        rate = {(r["generator"], r["opponent"]): r["win_rate"] for _, r in wins.iterrows()}
        body = [[a, *("" if a == b else _num(rate.get((a, b)), 2) for b in order)] for a in order]
        lines += [
            f"### {dim}: same-prompt win rate of the row over the column (ties half)",
            "",
            _md(["", *order], body),
            "",
        ]
    return "\n".join(lines)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.to_dict("records"):
        clean = {}
        for k, v in record.items():
            if isinstance(v, float) and math.isnan(v) or v is pd.NA:
                v = None
            elif hasattr(v, "item"):
                v = v.item()
            clean[k] = v
        out.append(clean)
    return out


def to_json(stats: BenchStats, meta: dict[str, Any]) -> dict[str, Any]:
    """Everything as plain JSON: ``meta``, the directions, the ranking per dimension, the long tables."""
    return {
        **meta,
        "confidence": stats.confidence,
        "n_resamples": stats.n_resamples,
        "higher_is_better": stats.higher_is_better,
        "ranking": {d: stats.ranking(d) for d in stats.higher_is_better},
        "means": _records(stats.means),
        "win_rates": _records(stats.win_rates),
    }


def chart(stats: BenchStats, path: Path, title: str) -> Path:
    """One panel per dimension: each generator's mean and interval, best at the top."""
    dims = list(stats.higher_is_better)
    overall = stats.means[stats.means["group_column"] == OVERALL]
    n = overall["generator"].nunique()
    fig = Figure(figsize=(4.6 * len(dims), 0.9 + 0.38 * n), dpi=110)
    FigureCanvasAgg(fig)
    for k, dim in enumerate(dims, start=1):
        ax = fig.add_subplot(1, len(dims), k)
        rows = overall[overall["dimension"] == dim].sort_values("rank", ascending=False)
        y = range(len(rows))
        err = [(rows["mean"] - rows["low"]).clip(lower=0), (rows["high"] - rows["mean"]).clip(lower=0)]
        ax.errorbar(rows["mean"], list(y), xerr=err, fmt="o", color="C0", ecolor="C0", capsize=3, ms=4)
        ax.set_yticks(list(y), rows["generator"], fontsize=8)
        up = stats.higher_is_better[dim]
        ax.set_xlabel(f"{dim} ({'higher' if up else 'lower'} is better), mean over prompts", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{dim}: {round(stats.confidence * 100)}% bootstrap interval over prompts", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_outputs(stats: BenchStats, out: Path, title: str, meta: dict[str, Any], notes: list[str]) -> dict[str, Path]:
    """Write ``bench.md``, ``bench.json`` and ``bench.png`` into ``out``; returns them by kind."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out / "bench.md", "json": out / "bench.json", "chart": out / "bench.png"}
    files["markdown"].write_text(markdown(stats, title, notes) + "\n")
    files["json"].write_text(json.dumps(to_json(stats, {**meta, "notes": notes}), indent=1, ensure_ascii=False) + "\n")
    chart(stats, files["chart"], title)
    return files
