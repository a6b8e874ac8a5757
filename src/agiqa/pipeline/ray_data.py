"""Scoring on Ray Data: a model per actor in a pool, fed by ``map_batches``; parquet shards that a rerun skips.

* ``score_dataset(ds, model)`` takes a ``ray.data.Dataset`` with an ``image`` column (paths or encoded bytes) and a
  ``prompt`` column and returns the dataset with one column per dimension plus ``error`` and ``warning`` (lazy, as
  Ray datasets are). Each actor loads the model once (``agiqa.api.load``) and scores its batches with
  ``Scorer.score``, so the scores are those of the local pipeline.
* ``score_shards(source, out, model)`` is ``agiqa score --engine ray``: ``source`` is a folder of parquet shards
  (one output shard per input file, same name) or an item table (cut into shards of ``shard_size`` rows,
  ``shard-000000.parquet`` ...). Output shards appear atomically under ``out`` as their rows complete; a rerun
  scores only the shards that are not there yet.

Ray connects to ``$RAY_ADDRESS`` when it is set (a cluster) and otherwise starts on this machine.
"""

from __future__ import annotations

import hashlib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agiqa.data.images import MAX_PIXELS
from agiqa.io import write_table

SHARD = "__agiqa_shard"  # helper column: which output shard a row belongs to (dropped before writing)
RAY_NAME = "__agiqa_name"  # optional input column: what to write in ``image`` instead of the path scored


def init_ray(num_cpus: int | None = None, object_store_mb: int | None = None) -> None:
    """Connect to the cluster at ``$RAY_ADDRESS``, or start Ray on this machine (``num_cpus``, object store size)."""
    import os

    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
        return
    store = object_store_mb * 2**20 if object_store_mb else None
    ray.init(num_cpus=num_cpus, object_store_memory=store, include_dashboard=False, log_to_driver=False)


def _image_ref(value: Any, root: Path | None) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    path = Path(str(value))
    return root / path if root is not None and not path.is_absolute() else path


def _image_name(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha1:" + hashlib.sha1(bytes(value)).hexdigest()  # the bytes themselves are not copied out
    return str(value)


class ScoreActor:
    """One model in one Ray actor: scores pandas batches (what ``map_batches`` calls)."""

    def __init__(self, model: str | None, device: str, threads: int, runtime: str, max_pixels: int, root: str | None):
        from agiqa.api.scoring import load

        self.scorer = load(model, device=device, threads=threads, runtime=runtime, max_pixels=max_pixels)
        self.root = Path(root) if root else None

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        images = [_image_ref(v, self.root) for v in batch["image"]]
        prompts = batch["prompt"].fillna("").astype(str).tolist() if "prompt" in batch else None
        result = self.scorer.score(images, prompts, batch_size=max(1, len(images)))
        out = batch.drop(columns=[RAY_NAME]) if RAY_NAME in batch else batch.copy()
        out["image"] = batch[RAY_NAME].astype(str) if RAY_NAME in batch else [_image_name(v) for v in batch["image"]]
        if "prompt" not in out:
            out["prompt"] = ""
        for name, values in result.scores.items():
            out[name] = values
        out["error"], out["warning"] = result.errors, result.warnings
        return out


def score_dataset(
    ds: Any,
    model: str | None = None,
    *,
    actors: int = 1,
    batch_size: int = 16,
    device: str = "cpu",
    threads: int = 1,
    runtime: str = "auto",
    max_pixels: int = MAX_PIXELS,
    root: str | Path | None = None,
) -> Any:
    """Score a ``ray.data.Dataset`` of ``image`` (path or bytes) and ``prompt`` rows in a pool of actors.

    Args:
        ds: The dataset; other columns are carried through.
        model: Model name or folder (None: the default model); each actor loads it once.
        actors: Size of the actor pool (one model each).
        batch_size: Rows per ``map_batches`` call (and per model call).
        device: ``cpu`` or ``cuda``; with ``cuda`` each actor asks Ray for one GPU.
        threads: CPU threads of each actor (and the CPUs it asks Ray for).
        runtime: Image tower runtime (``agiqa.load``).
        max_pixels: Larger images are refused.
        root: Folder that relative image paths are relative to (on every node).

    Returns:
        The dataset with columns ``image`` (bytes replaced by ``sha1:<digest>``), ``prompt``, the other input columns,
        one per dimension, ``error``, ``warning``.
    """
    gpu = str(device).startswith("cuda")
    return ds.map_batches(
        ScoreActor,
        fn_constructor_kwargs={
            "model": model,
            "device": device,
            "threads": threads,
            "runtime": runtime,
            "max_pixels": max_pixels,
            "root": str(root) if root is not None else None,
        },
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=actors,
        num_cpus=0 if gpu else threads,
        num_gpus=1 if gpu else 0,
    )


@dataclass(frozen=True)
class ShardSummary:
    """What ``score_shards`` did: shards left to score, shards written now, rows scored now, rows that failed."""

    shards: int
    scored_shards: int
    rows: int
    failed: int


def _table_shards(table: pd.DataFrame, out: Path, shard_size: int) -> tuple[pd.DataFrame, dict[Any, tuple[Path, int]]]:
    """The rows of shards not yet in ``out`` (with the ``SHARD`` column) and each such shard's file and row count."""
    n = math.ceil(len(table) / shard_size)
    todo = {k: out / f"shard-{k:06d}.parquet" for k in range(n)}
    todo = {k: path for k, path in todo.items() if not path.is_file()}
    table = table.assign(**{SHARD: [i // shard_size for i in range(len(table))]})
    pending = table[table[SHARD].isin(list(todo))]
    return pending, {k: (todo[k], int((pending[SHARD] == k).sum())) for k in todo}


def score_shards(
    source: str | Path | pd.DataFrame,
    out: str | Path,
    model: str | None = None,
    *,
    shard_size: int = 4096,
    root: str | Path | None = None,
    on_shard: Callable[[Path, int], None] | None = None,
    **options: Any,
) -> ShardSummary:
    """Score a folder of parquet shards, or an item table, into parquet shards under ``out`` (module docstring).

    Args:
        source: A folder of ``*.parquet`` files with ``image`` and ``prompt`` columns, or a table of items
            (``image`` paths or bytes, ``prompt``, other columns; ``RAY_NAME`` for what to write as ``image``).
        out: Folder of the output shards (created).
        model: Model name or folder.
        shard_size: Rows per output shard when ``source`` is a table.
        root: Folder relative image paths are relative to (default: the source folder).
        on_shard: Called with each shard written and its row count.
        **options: ``score_dataset`` options (``actors``, ``batch_size``, ``device``, ``threads``, ``runtime`` ...).

    Raises:
        FileNotFoundError: ``source`` is a folder without parquet files.
        ValueError: A shard lacks the ``image`` column, or ``shard_size`` < 1.
    """
    import ray

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    context = ray.data.DataContext.get_current()  # a dataset keeps the context it was made under
    kept, context.execution_options.preserve_order = context.execution_options.preserve_order, True
    try:  # rows reach the driver in input order, so a shard's rows are written in the order they came
        ds, shards, root = _source_dataset(source, out, shard_size, root, options.get("actors", 1))
        if ds is None:
            return ShardSummary(0, 0, 0, 0)
        return _write_shards(score_dataset(ds, model, root=root, **options), shards, on_shard)
    finally:
        context.execution_options.preserve_order = kept


def _source_dataset(
    source: str | Path | pd.DataFrame, out: Path, shard_size: int, root: str | Path | None, actors: int
) -> tuple[Any, dict[Any, tuple[Path, int]], str | Path | None]:
    """The rows of the shards not yet in ``out`` as a dataset (None: all done), each such shard, the image root."""
    import ray

    if isinstance(source, pd.DataFrame):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        pending, shards = _table_shards(source, out, shard_size)
        step = max(1, math.ceil(len(pending) / (4 * actors)))  # blocks enough for every actor
        blocks = [pending.iloc[i : i + step] for i in range(0, len(pending), step)]
        return (ray.data.from_pandas(blocks) if blocks else None), shards, root
    folder = Path(source)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.parquet shards (give a folder of parquet files or an item table)")
    todo = {str(f.resolve()): (out / f.name, _parquet_rows(f)) for f in files if not (out / f.name).is_file()}
    _settle_fsspec_http()
    ds = ray.data.read_parquet(list(todo), include_paths=True).rename_columns({"path": SHARD}) if todo else None
    return ds, {_ray_path(k): v for k, v in todo.items()}, root if root is not None else folder


def _settle_fsspec_http() -> None:
    """Import fsspec's HTTP filesystem once, here, so Ray's threaded file listing does not race on it.

    Ray Data asks ``from fsspec.implementations.http import HTTPFileSystem`` in each of its listing threads and
    treats only ``ModuleNotFoundError`` as "absent". Without ``aiohttp`` that import fails; a thread that meets the
    module half-imported by another gets a plain ``ImportError`` and the whole read fails, now and then. A failed
    import recorded as ``None`` in ``sys.modules`` fails the same way (``ModuleNotFoundError``) in every thread.
    """
    import sys

    name = "fsspec.implementations.http"
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = None  # type: ignore[assignment]


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "image" not in schema.names:
        raise ValueError(f"{path}: no 'image' column (found {schema.names}); shards need image and prompt")
    return pq.ParquetFile(path).metadata.num_rows


def _ray_path(path: str) -> str:
    """How Ray names a local file in ``include_paths`` (no scheme, absolute)."""
    return str(Path(path).resolve())


def _write_shards(
    scored: Any, shards: dict[Any, tuple[Path, int]], on_shard: Callable[[Path, int], None] | None
) -> ShardSummary:
    """Collect the scored rows by shard and write each shard atomically once all its rows are in."""
    pending: dict[Any, list[pd.DataFrame]] = {}
    counts: dict[Any, int] = {}
    rows = failed = written = 0
    for batch in scored.iter_batches(batch_format="pandas", batch_size=None):
        for key, part in batch.groupby(SHARD, sort=False):
            key = _ray_path(key) if isinstance(key, str) else int(key)
            pending.setdefault(key, []).append(part)
            counts[key] = counts.get(key, 0) + len(part)
            path, expected = shards[key]
            if counts[key] == expected:
                frame = pd.concat(pending.pop(key)).drop(columns=[SHARD])
                write_table(frame.reset_index(drop=True), path)
                rows, failed, written = rows + len(frame), failed + int((frame["error"] != "").sum()), written + 1
                if on_shard is not None:
                    on_shard(path, len(frame))
    return ShardSummary(len(shards), written, rows, failed)
