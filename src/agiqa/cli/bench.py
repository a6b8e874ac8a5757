"""``agiqa bench``: compare generators on a prompt suite.

Exit codes: 0 when every image was scored, 1 when some could not be (they are left out of the comparison and
counted in the report), 2 for bad arguments, 130 when interrupted (rerun the command to resume scoring).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, INTERRUPTED, fail, message, stderr
from agiqa.cli.options import AllowUntrainedOpt, BatchOpt, DeviceOpt, ModelOpt, WorkersOpt, check_model, load_scorer


@app.command("bench")
def bench(
    root: Annotated[Path, typer.Argument(help="Folder with one sub-folder of images per generator.")],
    prompts: Annotated[
        str,
        typer.Option(
            "--prompts",
            help="Prompt suite: a shipped name (partiprompts, imagereward) or a table with columns id, prompt and "
            "grouping columns (.csv/.tsv/.json/.jsonl/.parquet).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for bench.md, bench.json, bench.png, scores.csv.")],
    mapping: Annotated[
        Path | None,
        typer.Option("--map", help="Table with columns generator, image, prompt_id (instead of file names)."),
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Grouping column to report on (repeat; default: all).")
    ] = None,
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    batch_size: BatchOpt = 16,
    device: DeviceOpt = "cpu",
    workers: WorkersOpt = None,
    resamples: Annotated[int, typer.Option("--bootstrap", min=100, help="Bootstrap resamples per interval.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Score again over an existing OUT/scores.csv.")] = False,
    reuse_scores: Annotated[
        bool, typer.Option(help="Use an existing OUT/scores.csv of the same images (recompute the tables only).")
    ] = False,
) -> None:
    """Compare generators: per dimension the mean over prompts with a 95% bootstrap interval, per group, the
    ranking and same-prompt win rates, as bench.md, bench.json and bench.png in OUT.

    Images map to prompt ids by file name ({id}.png, {id:05d}.jpg, {id}_{seed}.png, {id}-{k}.png) or --map.
    Scoring is resumable: an interrupted bench continues when the same command is run again.
    """
    check_model(model, allow_untrained)
    scorer = load_scorer(model, device, allow_untrained=allow_untrained)
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=stderr(), transient=True) as progress:
        task = progress.add_task("scoring", total=None)
        try:
            result = api.run_bench(
                scorer, root, prompts, out, mapping=mapping, groups=group or None, batch_size=batch_size,
                workers=workers, n_resamples=resamples, seed=seed, overwrite=overwrite, reuse_scores=reuse_scores,
                on_start=lambda total, done: progress.update(task, total=total, completed=done),
                on_progress=lambda n: progress.advance(task, n),
            )  # fmt: skip
        except FileExistsError:
            raise fail(
                f"{out / 'scores.csv'} exists; pass --reuse-scores to compare from it or --overwrite to score again"
            ) from None
        except api.PartialRunMismatch as err:
            raise fail(f"{message(err)}; remove {out / 'scores.csv.partial'} to start over") from None
        except (FileNotFoundError, ValueError) as err:
            raise fail(message(err)) from None
        except KeyboardInterrupt:
            progress.stop()
            stderr().print("interrupted; rerun the same command to resume scoring")
            raise typer.Exit(INTERRUPTED) from None
    _print_rankings(result)
    for problem in result.problems:
        stderr().print(f"[yellow]note:[/yellow] {problem}", highlight=False, soft_wrap=True)
    stderr().print("wrote " + ", ".join(str(p) for p in result.files.values()), highlight=False, soft_wrap=True)
    if result.failed:
        raise typer.Exit(FAILED)


def _print_rankings(result: api.BenchResult) -> None:
    stats = result.stats
    for dim, up in stats.higher_is_better.items():
        rows = stats.means[(stats.means["dimension"] == dim) & (stats.means["group_column"] == "all")]
        tbl = Table(title=f"{dim} ({'higher' if up else 'lower'} is better)")
        for col in ("rank", "generator", "mean", "95% CI", "prompts"):
            tbl.add_column(col, justify="left" if col == "generator" else "right")
        for _, r in rows.sort_values("rank").iterrows():
            ci = "-" if math.isnan(r["low"]) else f"[{r['low']:.3f}, {r['high']:.3f}]"
            tbl.add_row(str(r["rank"]), r["generator"], f"{r['mean']:.3f}", ci, str(r["n_prompts"]))
        Console().print(tbl)
