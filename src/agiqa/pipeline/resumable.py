"""Scoring into a file that survives interruption: ``score_to_file``, and the score table's columns.

Rows go to csv/jsonl/parquet and the run can be interrupted at any time (Ctrl-C, ``kill -9``, power loss).
Finished chunks go to ``OUT.partial/chunk-NNNNNN.jsonl``, each written atomically, next to a ``manifest.json`` of
what is being scored; the first chunk holds 16 items and each next one twice as many up to ``chunk_size``, so rows
reach the disk within seconds of the start. A rerun with the same items and model skips the chunks that are done;
the final ``OUT`` is assembled by streaming the chunks (memory does not grow with the number of items) and renamed
into place only at the end, after which the ``.partial`` folder is removed. Batches never cross chunk boundaries,
so a resumed run computes exactly the same batches as an uninterrupted one and writes the same bytes. A run holds
``OUT.lock`` (``agiqa.pipeline.lock``): a second run on the same ``OUT`` is refused, naming the first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agiqa.data.images import MAX_PIXELS, ImageRef
from agiqa.io import atomic_write_bytes, table_format, table_writer
from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec
from agiqa.models.registry import weights_path
from agiqa.pipeline.engine import Row, iter_scores
from agiqa.pipeline.lock import output_lock

MANIFEST_VERSION = 2
DEFAULT_CHUNK_SIZE = 512
FIRST_CHUNK = 16
"""Items of the first saved chunk; chunks double from there up to ``chunk_size``."""


def output_columns(dimensions: Sequence[ScoreSpec], extra: Sequence[str] = ()) -> list[str]:
    """Columns of a score table: ``image, prompt, <extra input columns>, <one per dimension>, error, warning``."""
    return ["image", "prompt", *extra, *(d.name for d in dimensions), "error", "warning"]


def rows_to_frame(
    rows: Sequence[Row],
    names: Sequence[str],
    prompts: Sequence[str],
    dimensions: Sequence[ScoreSpec],
    extra: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A score table from rows (``names`` is what goes into the ``image`` column; ``extra`` columns are copied)."""
    columns = {} if extra is None else {c: extra[c].to_numpy() for c in extra.columns}
    data = {
        "image": [names[r.index] for r in rows],
        "prompt": [prompts[r.index] for r in rows],
        **{c: [values[r.index] for r in rows] for c, values in columns.items()},
        **{d.name: [r.scores[d.name] for r in rows] for d in dimensions},
        "error": [r.error for r in rows],
        "warning": [r.warning for r in rows],
    }
    return pd.DataFrame(data, columns=output_columns(dimensions, list(columns)))


class PartialRunMismatch(ValueError):
    """``OUT.partial`` holds an unfinished run of other items, another model or another chunk size."""


@dataclass(frozen=True)
class RunSummary:
    """What ``score_to_file`` did.

    Attributes:
        total: Items in the input.
        failed: Items with an error (at least one dimension not scored).
        warned: Items with a warning.
        resumed: Items found done in ``OUT.partial`` and not scored again.
        out: The file written.
    """

    total: int
    failed: int
    warned: int
    resumed: int
    out: Path


def partial_dir(out: str | Path) -> Path:
    """The folder where the chunks of an unfinished run of ``out`` are kept."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _model_identity(model: QualityModel) -> dict[str, Any]:
    card = model.card
    ident: dict[str, Any] = {"class": type(model).__name__, "dimensions": [d.name for d in model.dimensions]}
    if card is not None:
        ident["card"] = card.to_dict()
        path = weights_path(card)
        if path is not None and path.is_file():
            stat = path.stat()
            ident["weights"] = {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return ident


def _items_digest(names: Sequence[str], images: Sequence[ImageRef], prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for name, ref, prompt in zip(names, images, prompts, strict=True):
        h.update(json.dumps([name, str(ref), prompt], ensure_ascii=False).encode("utf-8") + b"\n")
    return h.hexdigest()


def _chunk_path(folder: Path, k: int) -> Path:
    return folder / f"chunk-{k:06d}.jsonl"


def _read_chunk(path: Path, expected: range, dims: Sequence[str]) -> list[Row] | None:
    """The rows of a finished chunk, or None when the file is missing, short, or not exactly what was expected."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.endswith("\n"):
        return None
    try:
        records = [json.loads(line) for line in text.splitlines()]
        rows = [Row(r["i"], {d: float(r[d]) for d in dims}, r["error"], r["warning"]) for r in records]
    except (ValueError, KeyError, TypeError):
        return None
    return rows if [r.index for r in rows] == list(expected) else None


def _chunk_bytes(rows: Sequence[Row]) -> bytes:
    lines = [
        json.dumps({"i": r.index, **r.scores, "error": r.error, "warning": r.warning}, ensure_ascii=False) for r in rows
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def chunk_spans(n_items: int, chunk_size: int) -> list[range]:
    """Item ranges of the saved chunks: ``FIRST_CHUNK`` items, then twice as many each time up to ``chunk_size``
    (so the first rows reach the disk within seconds of the start), then ``chunk_size`` each."""
    spans, start, size = [], 0, min(FIRST_CHUNK, chunk_size)
    while start < n_items:
        spans.append(range(start, min(start + size, n_items)))
        start += size
        size = min(2 * size, chunk_size)
    return spans


def score_to_file(
    model: QualityModel,
    images: Sequence[ImageRef],
    prompts: Sequence[str],
    out: str | Path,
    names: Sequence[str] | None = None,
    batch_size: int = 16,
    workers: int = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    overwrite: bool = False,
    restart: bool = False,
    max_pixels: int = MAX_PIXELS,
    on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    extra: pd.DataFrame | None = None,
) -> RunSummary:
    """Score every item into ``out`` (csv / jsonl / parquet by extension), resuming an interrupted run.

    Memory does not grow with the number of items: finished chunks go to disk as they complete and ``out`` is
    assembled by streaming them. The run holds ``OUT.lock`` (``agiqa.pipeline.lock``) while it works.

    Args:
        model: A model in eval mode.
        images: Image references, normally paths.
        prompts: One prompt per image.
        out: Output file; written only when every item is scored.
        names: What to write in the ``image`` column (default: ``str(images[i])``).
        batch_size: Items per model call.
        workers: Decoding processes (0: decode in this process).
        chunk_size: Largest saved chunk (see ``chunk_spans``); part of the run's identity (a rerun must use the same).
        overwrite: Replace an existing ``out`` instead of refusing.
        restart: Discard the chunks of an earlier unfinished run instead of resuming it.
        max_pixels: Larger images are refused.
        on_start: Called once with ``(total, already_done)``.
        on_progress: Called with the number of items of each scored batch.
        extra: Further columns of the input table, one row per item, copied into ``out`` after ``prompt``.

    Returns:
        What was done.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        FileNotFoundError: The folder of ``out`` does not exist.
        OutputLocked: Another run is writing ``out``.
        PartialRunMismatch: ``OUT.partial`` belongs to a run with other items, model or chunk size.
        ValueError: Mismatched inputs or an unknown output format.
    """
    out = Path(out)
    fmt = table_format(out)
    names = [str(x) for x in images] if names is None else list(names)
    if not len(images) == len(prompts) == len(names):
        raise ValueError(f"got {len(images)} images, {len(prompts)} prompts and {len(names)} names; they must match")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if extra is not None:
        if len(extra) != len(images):
            raise ValueError(f"extra columns have {len(extra)} rows for {len(images)} images; they must match")
        clash = sorted(set(extra.columns) & set(output_columns(model.dimensions)))
        if clash:
            raise ValueError(
                f"input column(s) {clash} clash with the score table's own columns; rename them in the input table"
            )
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it, or choose another file")

    manifest = {
        "agiqa_partial": MANIFEST_VERSION,
        "out_format": fmt,
        "model": _model_identity(model),
        "n_items": len(images),
        "items_sha256": _items_digest(names, images, prompts),
        "chunk_size": chunk_size,
    }
    with output_lock(out):
        if out.exists() and not overwrite:  # another run may have finished it while this one started
            raise FileExistsError(f"{out} exists; pass overwrite=True to replace it, or choose another file")
        folder = partial_dir(out)
        if restart:
            shutil.rmtree(folder, ignore_errors=True)
        _open_partial(folder, manifest, out)
        dims = [d.name for d in model.dimensions]
        spans = chunk_spans(len(images), chunk_size)
        done: dict[int, tuple[int, int]] = {}  # chunk -> (failed, warned)
        for k, span in enumerate(spans):
            rows = _read_chunk(_chunk_path(folder, k), span, dims)
            if rows is not None:
                done[k] = _counts(rows)
        resumed = sum(len(spans[k]) for k in done)
        if on_start is not None:
            on_start(len(images), resumed)
        _score_chunks(model, images, prompts, folder, spans, done, batch_size, workers, max_pixels, on_progress)
        with table_writer(out) as write:
            for k, span in enumerate(spans):
                rows = _read_chunk(_chunk_path(folder, k), span, dims)
                if rows is None:
                    raise RuntimeError(f"{_chunk_path(folder, k)} vanished or was damaged while this run held {out}")
                write(rows_to_frame(rows, names, prompts, model.dimensions, extra))
            if not spans:
                write(rows_to_frame([], names, prompts, model.dimensions, extra))
        shutil.rmtree(folder, ignore_errors=True)
    return RunSummary(
        total=len(images),
        failed=sum(f for f, _ in done.values()),
        warned=sum(w for _, w in done.values()),
        resumed=resumed,
        out=out,
    )


def _counts(rows: Sequence[Row]) -> tuple[int, int]:
    return sum(bool(r.error) for r in rows), sum(bool(r.warning) for r in rows)


def _score_chunks(
    model: QualityModel,
    images: Sequence[ImageRef],
    prompts: Sequence[str],
    folder: Path,
    spans: list[range],
    done: dict[int, tuple[int, int]],
    batch_size: int,
    workers: int,
    max_pixels: int,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Score the chunks not in ``done``, writing each (atomically) as soon as its last batch is scored."""
    todo = [k for k in range(len(spans)) if k not in done]
    batches = [list(spans[k][s : s + batch_size]) for k in todo for s in range(0, len(spans[k]), batch_size)]
    pending: dict[int, Row] = {}  # rows of the chunk being filled, never more than one chunk's worth
    next_todo = 0
    for rows in iter_scores(model, images, prompts, batch_size, workers, batches, max_pixels):
        pending.update({r.index: r for r in rows})
        while next_todo < len(todo) and spans[todo[next_todo]][-1] in pending:
            k = todo[next_todo]
            chunk = [pending.pop(i) for i in spans[k]]
            atomic_write_bytes(_chunk_path(folder, k), _chunk_bytes(chunk))
            done[k] = _counts(chunk)
            next_todo += 1
        if on_progress is not None:
            on_progress(len(rows))


def _open_partial(folder: Path, manifest: dict[str, Any], out: Path) -> None:
    """Create ``folder`` with ``manifest``, or check that the one there describes the same run."""
    path = folder / "manifest.json"
    wanted = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    found = None
    if folder.is_dir() and path.is_file():
        with contextlib.suppress(ValueError):
            found = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(found, dict):
        expected = json.loads(wanted)
        if found == expected:
            return
        differ = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        raise PartialRunMismatch(
            f"{folder} holds an unfinished run with a different {', '.join(differ)} than this one; rerun with "
            f"the arguments of that run to finish it, or delete {folder} (or pass restart=True) to start over"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, wanted.encode("utf-8"))
