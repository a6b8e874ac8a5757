"""``agiqa score`` (images into a table, resumable) and ``agiqa rank`` (best of N for one prompt).

Exit codes: 0 when every item was scored (a dimension left out for want of a prompt is a warning, not an error),
1 when at least one item has an error (see the ``error`` column), 2 for bad arguments, 130 when interrupted (rerun
the command to resume). Arguments are checked before the model loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, INTERRUPTED, fail, message, stderr
from agiqa.cli.keep import CopyToOpt, KeepOpt, KeptOutOpt, LinkToOpt, PercentilesOpt, apply_plan, keep_plan
from agiqa.cli.options import (
    AllowUntrainedOpt,
    BatchOpt,
    DeviceOpt,
    ModelOpt,
    RuntimeOpt,
    ThreadsOpt,
    WorkersOpt,
    check_model,
    load_scorer,
)


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        # Items scored in this run over its time (resumed items excluded), steadier than rich's windowed speed.
        scored = task.completed - task.fields.get("resumed", 0)
        speed = scored / task.elapsed if task.elapsed and scored > 0 else None
        return Text(f"{speed:.1f} img/s" if speed else "-- img/s", style="progress.data.speed")


def _items(paths: list[Path], prompt: str | None, table: Path | None) -> api.Items:
    """The items of positional paths and ``--prompt``, or of ``--input`` (paths are then folders to search)."""
    if table is not None:
        if prompt is not None:
            raise fail("give --prompt or --input (with a 'prompt' column), not both")
        not_dirs = [str(p) for p in paths if not p.is_dir()]
        if not_dirs:
            raise fail(
                f"with --input, positional arguments are folders to look for the table's images in; "
                f"not a folder: {', '.join(not_dirs)}"
            )
        try:
            return api.items_from_table(table, paths)
        except (ValueError, FileNotFoundError) as err:
            raise fail(f"--input {message(err)}") from None
    if not paths:
        raise fail("give images or folders to score, or --input TABLE with columns image, prompt")
    try:
        items = api.items_from_paths(paths, prompt or "")
    except FileNotFoundError as err:
        raise fail(message(err)) from None
    if items.skipped:
        stderr().print(f"{items.skipped_summary()} (not images agiqa reads; name one to see why)", highlight=False)
    return items


def _check_prompt(card: api.ModelCard, prompt: str | None, table: Path | None) -> None:
    """Without --prompt or --input only the dimensions that need no prompt are scored; there must be one."""
    if prompt is not None or table is not None:
        return
    needing = [d.name for d in card.dimensions if d.needs_prompt]
    if len(needing) == len(card.dimensions):
        raise fail(
            f"model {card.name} scores {', '.join(needing)} against the prompt; give --prompt TEXT, or --input "
            "TABLE with a prompt column"
        )
    if needing:
        stderr().print(f"no --prompt: {', '.join(needing)} will not be scored (NaN, with a warning)", highlight=False)


def _check_out(out_path: Path, overwrite: bool) -> None:
    try:
        api.table_format(out_path)
    except ValueError as err:
        raise fail(f"--out {err}") from None
    if out_path.exists() and not overwrite:
        raise fail(f"--out {out_path} exists; pass --overwrite to replace it, or choose another file")
    if not out_path.parent.is_dir():
        raise fail(f"--out {out_path}: folder {out_path.parent} does not exist")


@app.command("score")
def score(
    images: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Image files or folders (searched recursively); with --input: folders to find its images in."
        ),
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output table: .csv, .jsonl or .parquet.")] = ...,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="One prompt for every image.")] = None,
    table: Annotated[
        Path | None,
        typer.Option("--input", "-i", help="Table (.csv/.jsonl/.parquet) with columns image, prompt."),
    ] = None,
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    batch_size: BatchOpt = 16,
    device: DeviceOpt = "cpu",
    workers: WorkersOpt = None,
    chunk_size: Annotated[
        int, typer.Option(min=1, help="Largest saved chunk (resume granularity; the first chunks are smaller).")
    ] = 512,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard an unfinished earlier run instead of resuming it.")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse larger images (decompression bombs).")] = (
        api.MAX_PIXELS
    ),
    threads: ThreadsOpt = None,
    runtime: RuntimeOpt = "auto",
    engine: Annotated[
        str, typer.Option(help="local (this process), or ray (Ray Data actors; --out is a folder of parquet shards).")
    ] = "local",
    actors: Annotated[int, typer.Option(min=1, help="With --engine ray: model actors (one model each).")] = 1,
    percentiles: PercentilesOpt = False,
    keep: KeepOpt = None,
    kept_out: KeptOutOpt = None,
    copy_to: CopyToOpt = None,
    link_to: LinkToOpt = None,
) -> None:
    """Score images into a table with columns image, prompt, <input columns>, model, <one per dimension>, error,
    warning.

    Without --prompt, the dimensions that need no prompt (quality, for models that say so) are scored and the
    others are left empty with a warning. An interrupted run (Ctrl-C, kill, power loss) resumes when started again
    with the same arguments. --percentiles adds <dim>_pct columns; --keep adds a kept column to --out (which keeps
    every row), --kept-out writes the kept rows alone and --copy-to / --link-to places the kept images in a folder.
    """
    if engine not in ("local", "ray"):
        raise fail(f"--engine {engine!r}: use local or ray")
    if engine == "ray":
        check_model(model, allow_untrained)
        ray_options = {"actors": actors, "batch_size": batch_size, "device": device, "threads": threads or 1}
        _score_with_ray(images or [], prompt, table, out_path, model, chunk_size, runtime, max_pixels, ray_options)
        return
    _check_out(out_path, overwrite)
    card = check_model(model, allow_untrained)
    items = _items(images or [], prompt, table)
    if not items:
        found_in = ", ".join(map(str, images or []))
        raise fail(f"no images found in {found_in} (extensions: {', '.join(api.IMAGE_EXTENSIONS)})")
    _check_prompt(card, prompt, table)
    decoders = api.default_workers() if workers is None else workers
    scorer = load_scorer(model, device, max_pixels, threads or api.default_threads(decoders), runtime, allow_untrained)
    extra_columns = [] if items.extra is None else list(items.extra.columns)
    plan = keep_plan(scorer, out_path, extra_columns, percentiles, keep, kept_out, copy_to, link_to)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr(), transient=False) as progress:
        task = progress.add_task("scoring", total=len(items))

        def on_start(total: int, done: int) -> None:
            if done:
                progress.console.print(f"resuming: {done} of {total} items already scored in {out_path}.partial")
            progress.update(task, completed=done, resumed=done)
            progress.start_task(task)

        try:
            summary = scorer.score_to_file(
                items.files,
                items.prompts,
                out_path,
                names=items.names,
                batch_size=batch_size,
                workers=decoders,
                chunk_size=chunk_size,
                overwrite=overwrite,
                restart=restart,
                on_start=on_start,
                on_progress=lambda n: progress.advance(task, n),
                extra=items.extra,
            )
        except FileExistsError:
            raise fail(f"--out {out_path} exists; pass --overwrite to replace it, or choose another file") from None
        except api.PartialRunMismatch as err:
            raise fail(f"{message(err)} (--restart discards it)") from None
        except api.OutputLocked as err:
            raise fail(f"--out {message(err)}") from None
        except (FileNotFoundError, ValueError) as err:
            raise fail(message(err)) from None
        except KeyboardInterrupt:
            progress.stop()
            stderr().print(
                f"interrupted; finished chunks are kept in {out_path}.partial; rerun the same command to resume"
            )
            raise typer.Exit(INTERRUPTED) from None
    ok = summary.total - summary.failed
    stderr().print(
        f"scored {summary.total} items with {scorer.name}: {ok} ok, {summary.failed} failed"
        + (f", {summary.warned} with warnings" if summary.warned else "")
        + (f" ({summary.resumed} resumed)" if summary.resumed else "")
        + f"; wrote {summary.out}",
        highlight=False,
        soft_wrap=True,
    )
    apply_plan(plan, summary.out, items.files)
    if summary.failed:
        raise typer.Exit(FAILED)


def _score_with_ray(
    paths: list[Path],
    prompt: str | None,
    table: Path | None,
    out: Path,
    model: str | None,
    shard_size: int,
    runtime: str,
    max_pixels: int,
    options: dict[str, Any],
) -> None:
    """``--engine ray``: items (or ``--input`` parquet shards) into parquet shards under ``out``, skipping done ones."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise fail("--engine ray needs Ray Data: pip install 'agiqa[ray]'") from None
    if out.suffix:
        raise fail(f"--out {out}: with --engine ray, --out is a folder of parquet shards (no extension)")
    if table is not None and table.is_dir():
        source: Any = table
        root = paths[0] if paths else None
    else:
        items = _items(paths, prompt, table)
        source = pd.DataFrame(
            {"image": [str(f) for f in items.files], "prompt": items.prompts, api.RAY_NAME: items.names}
        )
        if items.extra is not None:
            source = pd.concat([source, items.extra.reset_index(drop=True)], axis=1)
        root = None
    api.init_ray()
    done = []
    try:
        summary = api.score_shards(
            source,
            out,
            model,
            shard_size=shard_size,
            root=root,
            runtime=runtime,
            max_pixels=max_pixels,
            on_shard=lambda path, n: done.append(n) or stderr().print(f"wrote {path} ({n} rows)", highlight=False),
            **options,
        )
    except (FileNotFoundError, ValueError) as err:
        raise fail(message(err)) from None
    stderr().print(
        f"scored {summary.rows} rows into {summary.scored_shards} new shard(s) under {out} ({summary.failed} failed)",
        highlight=False,
    )
    if summary.failed:
        raise typer.Exit(FAILED)


@app.command("rank")
def rank(
    images: Annotated[list[Path], typer.Argument(help="Images (or folders) to rank: best-of-N for one prompt.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the images were generated from.")],
    model: ModelOpt = None,
    allow_untrained: AllowUntrainedOpt = False,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Dimension to sort by (default: preference, quality, alignment)."),
    ] = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show only the best K.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON records instead of a table.")] = False,
    batch_size: BatchOpt = 16,
    device: DeviceOpt = "cpu",
) -> None:
    """Rank images for one prompt, best first (failed images last)."""
    check_model(model, allow_untrained)
    files = _items(images, prompt, None).files
    scorer = load_scorer(model, device, allow_untrained=allow_untrained)
    try:
        ranking = scorer.rank(files, prompt, by=by, batch_size=batch_size)
    except ValueError as err:
        raise fail(f"--by {message(err)}") from None
    shown = ranking.records[:top] if top else ranking.records
    if as_json:
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in shown]
        print(json.dumps(clean, indent=1, ensure_ascii=False))
    else:
        key, dims = ranking.by.name, [d.name for d in scorer.dimensions]
        arrow = "↑" if ranking.by.higher_is_better else "↓"
        tbl = Table(title=f"{scorer.name}: ranked by {key} {arrow} for {prompt!r}")
        tbl.add_column("#", justify="right")
        tbl.add_column("image")
        for name in dims:
            tbl.add_column(name, justify="right", style="bold" if name == key else None)
        tbl.add_column("error / warning")
        for k, r in enumerate(shown, 1):
            cells = ["-" if math.isnan(r[n]) else f"{r[n]:.4f}" for n in dims]
            tbl.add_row(str(k), r["image"], *cells, r["error"] or r["warning"])
        Console().print(tbl)
    if ranking.failed:
        raise typer.Exit(FAILED)
