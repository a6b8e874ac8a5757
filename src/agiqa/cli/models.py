"""``agiqa models``: every registered model, the weights it needs and whether they are on this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agiqa import api
from agiqa.cli.app import app

STATE_STYLE = {"trained": "green", "zero-shot": "green", "untrained": "yellow", "weights missing": "red"}


@app.command("models")
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    long: Annotated[
        bool, typer.Option("--long", help="Every detail: description, weight files, training data, every metric.")
    ] = False,
) -> None:
    """Every registered model: its state (trained, zero-shot, untrained, weights missing), dimensions, headline
    figures, measured speed and whether its weights are here; --long adds the description, the weight files, the
    training data, every metric and the percentile reference. Untrained models are refused for scoring unless
    --allow-untrained is given."""
    rows = api.model_info()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    Console().print(_long_table(rows) if long else _short_table(rows))
    timed = [r for r in rows if r["speed"]]
    for r in timed:
        how = "; ".join(x for x in (r["speed"].get("how"), r["speed"].get("source")) if x)
        line = f"{r['name']}: {r['speed']['images_per_s']:.1f} images/s" + (f" ({how})" if how else "")
        Console().print(line, markup=False, highlight=False)  # a card's text is shown as written
    if not long:
        Console().print("`agiqa models --long` (or --json): descriptions, weight files, training data, every metric.")
    untrained = sum(r["state"] == "untrained" for r in rows)
    if untrained:
        Console().print(
            f"{untrained} untrained model(s): scoring refuses them unless --allow-untrained is given; "
            "`agiqa train` writes a trained model folder.",
            highlight=False,
        )


def _dimensions(r: dict) -> str:
    return "\n".join(
        f"{d['name']} [{d['low']:g}, {d['high']:g}] {'↑' if d['higher_is_better'] else '↓'}"
        + (" (prompt)" if d["needs_prompt"] else "")
        for d in r["dimensions"]
    )


def _state(r: dict) -> str:
    return f"[{STATE_STYLE.get(r['state'], 'default')}]{r['state']}[/]"


def _speed(r: dict) -> str:
    return f"{r['speed']['images_per_s']:.1f} img/s" if r["speed"] else "-"


def _short_table(rows: list[dict]) -> Table:
    """One short row per model: what a user picks a model by."""
    tbl = Table(title="agiqa models")
    tbl.add_column("name", overflow="fold")
    tbl.add_column("state", no_wrap=True, min_width=len("weights missing"))
    tbl.add_column("dimensions", overflow="fold")
    tbl.add_column("measured", overflow="fold")
    tbl.add_column("speed", no_wrap=True)
    tbl.add_column("weights", overflow="fold")
    for r in rows:
        name = f"{r['name']}\n[dim](default)[/dim]" if r["name"] == api.DEFAULT_MODEL else r["name"]
        tbl.add_row(name, _state(r), _dimensions(r), _headline(r["metrics"]), _speed(r), _weights_here(r))
    return tbl


def _headline(metrics: dict) -> str:
    """Each dimension's SRCC and the alignment's prompt-swap share, from a card's metrics."""
    lines = [f"{k.removesuffix('_srcc')} SRCC {v:.3f}" for k, v in metrics.items() if k.endswith("_srcc")]
    swap = metrics.get("alignment_prompt_swap_share")
    if isinstance(swap, float):
        lines.append(f"prompt swap {swap:.1%}")
    return "\n".join(lines) or "-"


def _weights_here(r: dict) -> str:
    missing = [
        what
        for what, present in (("encoder", r["encoder_weights_present"]), ("head", r["head_weights_present"]))
        if present is False
    ]
    return f"[red]missing: {', '.join(missing)}[/red]" if missing else "[green]here[/green]"


def _long_table(rows: list[dict]) -> Table:
    """Every field of ``api.model_info`` but the JSON-only ones."""
    tbl = Table(title="agiqa models", show_lines=True)
    tbl.add_column("name", overflow="fold")
    tbl.add_column("state", no_wrap=True, min_width=len("weights missing"))
    for col in ("dimensions", "encoder weights", "head weights", "trained on", "metrics", "speed"):
        tbl.add_column(col, overflow="fold")
    tbl.add_column("reference p10/p50/p90", overflow="fold")
    for r in rows:
        enc = f"{r['encoder_weights']}\n" + (
            "[green]present[/green]" if r["encoder_weights_present"] else "[red]missing[/red]"
        )
        if r["head_weights"] is None:
            head = "none"
        else:
            head = f"{Path(r['head_weights']).name}\n" + (
                "[green]present[/green]" if r["head_weights_present"] else "[red]missing[/red]"
            )
        metrics = "\n".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r["metrics"].items())
        about = r["description"].split(". ")[0].strip()
        name = f"{r['name']}\n[dim]{about}[/dim]" if about else r["name"]
        tbl.add_row(
            name,
            _state(r),
            _dimensions(r),
            enc,
            head,
            r["trained_on"] or "-",
            metrics or "-",
            _speed(r),
            _reference(r["reference"]),
        )
    return tbl


def _reference(reference: dict | None) -> str:
    """Each dimension's p10 / p50 / p90, or why percentiles are not available."""
    if reference is None:
        return "none (no percentiles)"
    return "\n".join(f"{dim} {' / '.join(f'{v:.2f}' for v in q.values())}" for dim, q in reference["quantiles"].items())
