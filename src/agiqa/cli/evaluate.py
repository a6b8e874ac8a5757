"""``agiqa evaluate`` (score a predictions file against a dataset) and ``agiqa splits make``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import fail, message, stderr

splits_app = typer.Typer(help="Grouped train/test splits stored as files.", no_args_is_help=True)
app.add_typer(splits_app, name="splits")

console = Console()


def _load(name: str, root: Path) -> Any:
    try:
        ds = api.load_dataset(name, root)
    except (KeyError, FileNotFoundError, ValueError, TypeError) as err:
        raise fail(message(err)) from None
    if ds.problems:
        counts = ", ".join(f"{n} {kind}" for kind, n in ds.problem_counts().items())
        stderr().print(
            "[yellow]"
            + escape(
                f"{name}: {len(ds.problems)} problem(s) in the files ({counts}); "
                f"see `agiqa datasets validate {name} --root {root}`"
            )
            + "[/yellow]",
            highlight=False,
        )
    return ds


def _read_predictions(path: Path) -> Any:
    try:
        return api.read_table(path)
    except (ValueError, FileNotFoundError) as err:
        raise fail(f"--pred {message(err)}") from None


def _report_matching(result: dict[str, Any], pred: Path) -> None:
    n, matched = result["n_predictions"], result["n_matched"]
    by_name = f" ({result['matched_by_name']} by file name)" if result["matched_by_name"] else ""
    console.print(
        escape(f"{pred}: {matched} of {n} rows matched images of {result['dataset']}{by_name}"), highlight=False
    )
    for key, what in (
        ("unmatched", "match no image"),
        ("ambiguous", "match several images by file name"),
        ("duplicates", "are predicted more than once (first row kept)"),
    ):
        items = result[key]
        if items:
            shown = ", ".join(items[:5]) + (f" ... (+{len(items) - 5})" if len(items) > 5 else "")
            console.print(f"[yellow]{len(items)} row(s) {what}:[/yellow] {escape(shown)}", highlight=False)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    for warning in result.get("warnings", []):
        stderr().print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", highlight=False)


@app.command("evaluate")
def evaluate(
    pred: Path = typer.Option(
        ...,
        "--pred",
        help="Predictions: csv/jsonl/parquet with `image` + one column per dimension (an `agiqa score` output; its "
        "text columns are ignored).",
    ),
    dataset: str = typer.Option(..., "--dataset", help="Dataset name, see `agiqa datasets list`."),
    root: Path = typer.Option(..., "--root", help="Folder the dataset was unpacked to."),
    out: Path | None = typer.Option(None, "--out", help="Folder for metrics.csv, metrics.json and scatter PNGs."),
    dimension: list[str] | None = typer.Option(None, "--dimension", "-d", help="Dimension(s) to score (default: all)."),
    splits: Path | None = typer.Option(None, "--splits", help="Split file: score each test side, report mean ± std."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples (over prompts) for 95% CIs; 0 for none."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
) -> None:
    """Score a predictions file against a dataset's labels: SRCC, KRCC, PLCC, RMSE (+ pairwise accuracy).

    Warns when the model that wrote the predictions (their `model` column) was trained on the images evaluated.
    """
    frame = _read_predictions(pred)
    ds = _load(dataset, root)
    try:
        if splits is not None:
            split_list = api.load_splits(splits, ds)
            matched = api.match_predictions(frame, ds, dimension)
            results = api.evaluate_on_splits(frame, ds, split_list, dimension)
        else:
            result = api.evaluate_predictions(frame, ds, dimension, n_boot=n_boot, seed=seed)
    except (api.EvaluationError, api.SplitError) as err:
        raise fail(str(err)) from None
    if splits is not None:
        summary = {
            "dataset": ds.name,
            **matched.report(),
            "notes": [f"repeat {r['repeat']}: {n}" for r in results for n in r["notes"]],
            "warnings": [f"repeat {r['repeat']}: {w}" for r in results for w in r["warnings"]],
        }
        _report_matching(summary, pred)
        table = api.aggregate([api.metric_table(r) for r in results])
        console.print(api.rich_table(table, title=f"{dataset}: test sides of {len(split_list)} splits ({splits.name})"))
        if out:
            per_split = [
                {"repeat": r["repeat"], "n_matched": r["n_matched"], "metrics": api.metric_table(r)} for r in results
            ]
            extra = {**summary, "splits": str(splits), "per_split": per_split}
            paths = api.write_report(table, out, extra=extra)
            console.print(escape("wrote " + ", ".join(map(str, paths))), highlight=False)
        return
    _report_matching(result, pred)
    ci = {d: row["ci"] for d, row in result["metrics"].items() if "ci" in row} if n_boot else None
    table = api.single(api.metric_table(result), ci)
    console.print(api.rich_table(table, title=f"{dataset}: {pred.name}"))
    if n_boot:
        console.print(f"[dim]CI: percentile bootstrap over prompts, {n_boot} resamples, seed {seed}[/dim]")
    if out:
        _write_outputs(result, table, frame, ds, out)


def _write_outputs(result: dict[str, Any], table: Any, frame: Any, ds: Any, out: Path) -> None:
    paths = list(api.write_report(table, out, extra=result))
    matched = api.match_predictions(frame, ds, list(result["metrics"]))
    for dim in result["metrics"]:
        p, t, _ = api.labelled_values(matched, ds, dim)
        if p.size:
            paths.append(
                api.scatter_plot(p, t, out / f"scatter_{dim}.png", title=f"{ds.name} {dim}", ylabel=f"MOS ({dim})")
            )
    console.print(escape("wrote " + ", ".join(map(str, paths))), highlight=False)


@splits_app.command("make")
def splits_make(
    name: str = typer.Argument(..., help="Dataset name, see `agiqa datasets list`."),
    root: Path = typer.Option(..., "--root", help="Folder the dataset was unpacked to."),
    out: Path = typer.Option(..., "--out", help="JSON file to write the splits to."),
    n: int = typer.Option(10, "--n-splits", "--n", help="How many splits to make (--n is its old name)."),
    test_ratio: float = typer.Option(0.2, "--test-ratio", help="Share of prompts on the test side (0.2 = 4:1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the series."),
) -> None:
    """Make N seeded train/test splits grouped by prompt and save them as JSON."""
    ds = _load(name, root)
    try:
        made = api.make_splits(ds, n=n, test_ratio=test_ratio, seed=seed)
    except api.SplitError as err:
        raise fail(str(err)) from None
    api.save_splits(made, out)
    n_groups = len({s.group_id for s in ds.samples} | {p.group_id for p in ds.pairs})
    console.print(
        escape(
            f"wrote {n} splits of {name} ({n_groups} groups) to {out}: "
            f"train/test images {len(made[0].train)}/{len(made[0].test)} (repeat 0)"
        ),
        highlight=False,
    )
