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
) -> None:
    """Every registered model: its state (trained, zero-shot, untrained, weights missing), dimensions, the weights it
    needs and whether they are here, training data, metrics. Untrained models are refused for scoring unless
    --allow-untrained is given."""
    rows = api.model_info()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    tbl = Table(title="agiqa models", show_lines=True)
    tbl.add_column("name", overflow="fold")
    tbl.add_column("state", no_wrap=True, min_width=len("weights missing"))
    for col in ("dimensions", "encoder weights", "head weights", "trained on", "metrics", "reference p10/p50/p90"):
        tbl.add_column(col, overflow="fold")
    for r in rows:
        dims = "\n".join(
            f"{d['name']} [{d['low']:g}, {d['high']:g}] {'↑' if d['higher_is_better'] else '↓'}"
            + (" (prompt)" if d["needs_prompt"] else "")
            for d in r["dimensions"]
        )
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
        state = f"[{STATE_STYLE.get(r['state'], 'default')}]{r['state']}[/]"
        tbl.add_row(name, state, dims, enc, head, r["trained_on"] or "-", metrics or "-", _reference(r["reference"]))
    Console().print(tbl)
    untrained = sum(r["state"] == "untrained" for r in rows)
    if untrained:
        Console().print(
            f"{untrained} untrained model(s): scoring refuses them unless --allow-untrained is given; "
            "`agiqa train` writes a trained model folder.",
            highlight=False,
        )


def _reference(reference: dict | None) -> str:
    """Each dimension's p10 / p50 / p90, or why percentiles are not available."""
    if reference is None:
        return "none (no percentiles)"
    return "\n".join(f"{dim} {' / '.join(f'{v:.2f}' for v in q.values())}" for dim, q in reference["quantiles"].items())
