"""``agiqa datasets list``, ``agiqa datasets validate NAME --root PATH`` and ``agiqa mos RATINGS.csv``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, fail, message

datasets_app = typer.Typer(help="List the benchmark readers and check a dataset on disk.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
console = Console()

SHOW_PER_KIND = 3


@datasets_app.command("list")
def list_command() -> None:
    """Show every registered dataset reader: its label dimensions, label kind and layout."""
    table = Table(title="agiqa datasets")
    for col in ("name", "dimensions", "labels", "options", "description"):
        table.add_column(col)
    for info in api.list_datasets():
        table.add_row(
            info.name,
            ", ".join(info.dimensions) or "(from file)",
            info.label_kind,
            ", ".join(info.options()),
            info.description,
        )
    console.print(table)


def _summary(ds: api.Dataset) -> Table:
    table = Table(title=f"{ds.name} at {ds.root}")
    for col in ("what", "count", "min", "max", "mean"):
        table.add_column(col, justify="right" if col != "what" else "left")
    groups = {s.group_id for s in ds.samples} | {p.group_id for p in ds.pairs}
    ties = sum(p.is_tie for p in ds.pairs)
    for what, n in (("samples", len(ds.samples)), ("prompts", len(ds.prompts)), ("groups", len(groups))):
        table.add_row(what, str(n), "", "", "")
    table.add_row("pairs", f"{len(ds.pairs)} ({ties} ties)", "", "", "")
    for dim in ds.dimensions:
        values = pd.Series([s.labels[dim] for s in ds.samples if dim in s.labels], dtype=float)
        if len(values):
            row = [f"{values.min():.4g}", f"{values.max():.4g}", f"{values.mean():.4g}"]
        else:
            row = ["", "", ""]
        table.add_row(f"label {dim}", str(len(values)), *row)
    return table


def _problems(problems: list[api.Problem]) -> Table:
    by_kind: dict[str, list[api.Problem]] = defaultdict(list)
    for p in problems:
        by_kind[p.kind].append(p)
    table = Table(title=f"{len(problems)} problem(s)")
    for col in ("kind", "count", "fatal", f"first {SHOW_PER_KIND}"):
        table.add_column(col)
    for kind, items in sorted(by_kind.items(), key=lambda kv: (not kv[1][0].fatal, kv[0])):
        first = "\n".join(f"{p.where}: {p.message}" for p in items[:SHOW_PER_KIND])
        more = f"\n... and {len(items) - SHOW_PER_KIND} more" if len(items) > SHOW_PER_KIND else ""
        table.add_row(kind, str(len(items)), "yes" if any(p.fatal for p in items) else "", first + more)
    return table


@datasets_app.command("validate")
def validate_command(
    name: str = typer.Argument(..., help="Dataset name (see `agiqa datasets list`)."),
    root: Path = typer.Option(..., "--root", help="Folder the dataset was unpacked to (a table file for generic)."),
    labels_only: bool = typer.Option(False, "--labels-only", help="Check label files only; skip the images."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on any problem, not only when unusable."),
    option: list[str] = typer.Option([], "--option", "-o", help="Reader option KEY=VALUE, e.g. -o split=test_unique."),
) -> None:
    """Load a dataset, open every image header, and report counts and problems.

    Exit code 0: usable (warnings may be listed). 1: unusable (a fatal problem, nothing loaded, no image could
    be opened, or any problem with --strict). 2: the name or an option is wrong.
    """
    try:
        api.get_dataset(name)
    except KeyError as err:
        raise fail(message(err)) from None
    kwargs: dict[str, object] = {"check_images": not labels_only}
    for item in option:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--option {item!r} is not KEY=VALUE")
        kwargs[key] = value
    try:
        ds = api.load_dataset(name, root, **kwargs)
    except TypeError as err:
        raise fail(str(err)) from None
    except (OSError, ValueError) as err:
        console.print(f"[red]UNUSABLE:[/red] {err}")
        raise typer.Exit(FAILED) from None
    console.print(_summary(ds))
    if ds.problems:
        console.print(_problems(ds.problems))
    if not ds.usable:
        reason = "a fatal problem" if any(p.fatal for p in ds.problems) else "nothing was loaded"
        console.print(f"[red]UNUSABLE[/red]: {reason}.")
        raise typer.Exit(FAILED)
    verdict = f"usable with {len(ds.problems)} warning(s)" if ds.problems else "usable, no problems"
    console.print(f"[green]OK[/green]: {verdict}.")
    if strict and ds.problems:
        raise typer.Exit(FAILED)


@app.command("mos")
def mos_command(
    ratings: Path = typer.Argument(..., help="CSV with columns subject, image, rating (one row per rating)."),
    out: Path | None = typer.Option(None, "--out", help="Write image, mos, std, count to this CSV."),
    screen: bool = typer.Option(True, "--screen/--no-screen", help="ITU-R BT.500 subject screening."),
) -> None:
    """MOS from raw ratings (MINT-IQA eq. 1-3): BT.500 screening, per-subject z-scores in [0, 100]."""
    try:
        table = api.check_ratings(pd.read_csv(ratings), str(ratings))
        result = api.mos_from_ratings(table, screen=screen)
    except (OSError, ValueError) as err:
        raise fail(str(err), FAILED) from None
    subjects = len(result.screening)
    console.print(
        f"{subjects} subjects, {len(result.mos)} images; rejected {len(result.rejected)} subject(s): "
        f"rejection rate {result.rejection_rate:.1%} of subjects, "
        f"{result.rating_rejection_rate:.1%} of ratings"
    )
    for subject, reason in result.rejected.items():
        row = result.screening.loc[subject]
        console.print(f"  rejected {subject} ({reason}): P={row.P} Q={row.Q} N={row.N}")
    if out is not None:
        result.to_frame().to_csv(out, index=False)
        console.print(f"wrote {out}")
    else:
        console.print(result.to_frame().to_string(index=False, float_format="%.3f"))
