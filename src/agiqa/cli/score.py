"""``agiqa score``, ``agiqa rank``, ``agiqa models`` and ``agiqa serve``.

Exit codes of ``score`` and ``rank``: 0 when every item was scored in every dimension, 1 when at least one item has
an error (see the ``error`` column), 2 for bad arguments, 130 when interrupted (rerun the command to resume).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import pandas as pd

from agiqa.cli.app import app
from agiqa.data.images import MAX_PIXELS


def _console(stderr: bool = False) -> Console:
    # Made per call, so that the terminal width (COLUMNS) is read when the command runs.
    return Console(stderr=stderr)


ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Model name (see `agiqa models`) or model folder; default agiqa-lite."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 ...")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Items per model call.")]


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        # Items scored in this run over its time (resumed items excluded), steadier than rich's windowed speed.
        scored = task.completed - task.fields.get("resumed", 0)
        speed = scored / task.elapsed if task.elapsed and scored > 0 else None
        return Text(f"{speed:.1f} img/s" if speed else "-- img/s", style="progress.data.speed")


def _fail(message: str) -> typer.Exit:
    _console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _load_scorer(model: str | None, device: str):
    from agiqa.api import load

    try:
        return load(model, device=device)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc).strip("'\"")) from None


def _collect(
    paths: list[Path], prompt: str | None, table: Path | None
) -> tuple[list[str], list[Path], list[str], pd.DataFrame | None]:
    """``(names, files, prompts, extra columns)`` from positional paths and ``--prompt``, or from ``--input``."""
    from agiqa.io import read_item_table
    from agiqa.pipeline import find_images, resolve_image

    if table is not None:
        if prompt is not None:
            raise _fail("give --prompt or --input (with a 'prompt' column), not both")
        not_dirs = [str(p) for p in paths if not p.is_dir()]
        if not_dirs:
            raise _fail(
                f"with --input, positional arguments are folders to look for the table's images in; "
                f"not a folder: {', '.join(not_dirs)}"
            )
        try:
            rows, extra = read_item_table(table)
        except (ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
        roots = [*paths, table.parent]
        return [r[0] for r in rows], [resolve_image(r[0], roots) for r in rows], [r[1] for r in rows], extra
    if not paths:
        raise _fail("give images or folders to score, or --input TABLE with columns image, prompt")
    try:
        files = find_images(paths)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    return [str(f) for f in files], files, [prompt or ""] * len(files), None


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
    batch_size: BatchOpt = 16,
    device: DeviceOpt = "cpu",
    workers: Annotated[int | None, typer.Option(min=0, help="Decoding processes (default: spare cores).")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Items per saved chunk (resume granularity).")] = 512,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard an unfinished earlier run instead of resuming it.")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse larger images (decompression bombs).")] = MAX_PIXELS,
) -> None:
    """Score images into a table with columns image, prompt, <one per dimension>, error, warning.

    An interrupted run (Ctrl-C, kill, power loss) resumes when started again with the same arguments.
    """
    from agiqa.io import table_format
    from agiqa.pipeline import IMAGE_EXTENSIONS, default_workers, score_to_file

    try:
        table_format(out_path)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    names, files, prompts, extra = _collect(images or [], prompt, table)
    if not files:
        raise _fail(
            f"no images found in {', '.join(map(str, images or []))} (extensions: {', '.join(IMAGE_EXTENSIONS)})"
        )
    scorer = _load_scorer(model, device)
    n_workers = default_workers() if workers is None else workers
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console(stderr=True), transient=False) as progress:
        task = progress.add_task("scoring", total=len(files))

        def on_start(total: int, done: int) -> None:
            if done:
                progress.console.print(f"resuming: {done} of {total} items already scored in {out_path}.partial")
            progress.update(task, completed=done, resumed=done)
            progress.start_task(task)

        try:
            summary = score_to_file(
                scorer.model,
                files,
                prompts,
                out_path,
                names=names,
                batch_size=batch_size,
                workers=n_workers,
                chunk_size=chunk_size,
                overwrite=overwrite,
                restart=restart,
                max_pixels=max_pixels,
                on_start=on_start,
                on_progress=lambda n: progress.advance(task, n),
                extra=extra,
            )
        except (FileExistsError, FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            progress.stop()
            _console(stderr=True).print(
                f"interrupted; finished chunks are kept in {out_path}.partial; rerun the same command to resume"
            )
            raise typer.Exit(130) from None
    ok = summary.total - summary.failed
    _console(stderr=True).print(
        f"scored {summary.total} items with {scorer.name}: {ok} ok, {summary.failed} failed"
        + (f", {summary.warned} with warnings" if summary.warned else "")
        + (f" ({summary.resumed} resumed)" if summary.resumed else "")
        + f"; wrote {summary.out}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.failed:
        raise typer.Exit(1)


def default_rank_dimension(names: list[str]) -> str:
    """The dimension ``agiqa rank`` sorts by: preference, else quality, else alignment, else the first one."""
    return next((d for d in ("preference", "quality", "alignment") if d in names), names[0])


@app.command("rank")
def rank(
    images: Annotated[list[Path], typer.Argument(help="Images (or folders) to rank: best-of-N for one prompt.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the images were generated from.")],
    model: ModelOpt = None,
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
    from agiqa.pipeline import find_images

    try:
        files = find_images(images)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    scorer = _load_scorer(model, device)
    dims = {d.name: d for d in scorer.dimensions}
    key = by or default_rank_dimension(list(dims))
    if key not in dims:
        raise _fail(f"--by {key!r}: model {scorer.name} has dimensions {', '.join(dims)}")
    records = scorer.score(files, prompt, batch_size=batch_size).to_records()
    sign = 1.0 if dims[key].higher_is_better else -1.0
    records.sort(key=lambda r: (math.isnan(r[key]), -sign * r[key] if not math.isnan(r[key]) else 0.0))
    shown = records[:top] if top else records
    if as_json:
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in shown]
        print(json.dumps(clean, indent=1, ensure_ascii=False))
    else:
        arrow = "↑" if dims[key].higher_is_better else "↓"
        tbl = Table(title=f"{scorer.name}: ranked by {key} {arrow} for {prompt!r}")
        tbl.add_column("#", justify="right")
        tbl.add_column("image")
        for name in dims:
            tbl.add_column(name, justify="right", style="bold" if name == key else None)
        tbl.add_column("error / warning")
        for k, r in enumerate(shown, 1):
            cells = ["-" if math.isnan(r[n]) else f"{r[n]:.4f}" for n in dims]
            tbl.add_row(str(k), r["image"], *cells, r["error"] or r["warning"])
        _console().print(tbl)
    if any(r["error"] for r in records):
        raise typer.Exit(1)


def encoder_weights(spec: str) -> tuple[str, bool]:
    """What encoder weights a spec needs and whether they are on this machine (hub ids: the local HF cache)."""
    from agiqa.encoders.factory import parse_encoder_spec

    backend, source = parse_encoder_spec(spec)
    if source is None:
        return f"{backend}: shipped with its pip packages", True
    folder = Path(source).expanduser()
    if folder.exists() or folder.is_absolute() or source.startswith("."):
        return f"{backend}: folder {source}", folder.is_dir()
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(source, "config.json"), str)
    except Exception:  # a malformed hub id is simply not present
        cached = False
    return f"{backend}: hub {source} (local cache)", cached


def model_rows() -> list[dict[str, Any]]:
    """One record per registered model, as ``agiqa models --json`` prints it."""
    from agiqa.models.registry import list_models, weights_path

    rows = []
    for card in list_models():
        enc_need, enc_ok = encoder_weights(card.encoder)
        head = weights_path(card)
        rows.append(
            {
                "name": card.name,
                "method": card.method,
                "dimensions": [
                    {
                        "name": d.name,
                        "low": d.low,
                        "high": d.high,
                        "higher_is_better": d.higher_is_better,
                        "needs_prompt": d.needs_prompt,
                    }
                    for d in card.dimensions
                ],
                "encoder": card.encoder,
                "encoder_weights": enc_need,
                "encoder_weights_present": enc_ok,
                "head_weights": str(head) if head else None,
                "head_weights_present": head.is_file() if head else None,
                "trained_on": card.trained_on,
                "metrics": card.metrics,
                "description": card.description,
                "ready": enc_ok and (head is None or head.is_file()),
            }
        )
    return rows


@app.command("models")
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every registered model: dimensions, the weights it needs, whether they are here, training data, metrics."""
    rows = model_rows()
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    tbl = Table(title="agiqa models", show_lines=True)
    for col in ("name", "dimensions", "encoder weights", "head weights", "trained on", "metrics"):
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
            head = "none: zero-shot, or heads untrained (see description)"
        else:
            head = f"{Path(r['head_weights']).name}\n" + (
                "[green]present[/green]" if r["head_weights_present"] else "[red]missing[/red]"
            )
        metrics = "\n".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r["metrics"].items())
        about = r["description"].split(". ")[0].strip()
        name = f"{r['name']}\n[dim]{about}[/dim]" if about else r["name"]
        tbl.add_row(name, dims, enc, head, r["trained_on"] or "-", metrics or "-")
    _console().print(tbl)


@app.command("serve")
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: DeviceOpt = "cpu",
) -> None:
    """HTTP scoring service: POST /score, GET /models, GET /health (needs `pip install agiqa\\[serve]`)."""
    try:
        import python_multipart  # noqa: F401  (FastAPI needs it for uploads; fails late without it)
        import uvicorn

        from agiqa.serve import create_app
    except ImportError as exc:
        raise _fail(f"{exc}; install the server extra: pip install 'agiqa[serve]'") from None
    uvicorn.run(create_app(_load_scorer(model, device)), host=host, port=port)
