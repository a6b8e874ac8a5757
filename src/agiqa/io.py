"""Tables in and out: item tables (``image``, ``prompt``) read from csv/jsonl/parquet, score tables written atomically.

A file written here appears under its final name only when it is complete: it is written to a temporary file in the
same folder, flushed to disk (``fsync``) and renamed over the target with ``os.replace``, which is atomic on POSIX
and Windows. A crash leaves at worst a ``.NAME.tmp-PID`` file that no reader takes for the result.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd

OUTPUT_FORMATS = (".csv", ".jsonl", ".parquet")
INPUT_FORMATS = (".csv", ".jsonl", ".parquet")


def table_format(path: str | Path, allowed: tuple[str, ...] = OUTPUT_FORMATS) -> str:
    """The extension of ``path`` (``.csv``, ``.jsonl``, ``.parquet``), or a ``ValueError`` naming the file."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        suffix = ".jsonl"
    if suffix not in allowed:
        raise ValueError(f"{path}: unsupported extension {suffix or '(none)'!r}; use one of {', '.join(allowed)}")
    return suffix


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either its old content or the complete new one."""
    with atomic_file(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``path`` only when the ``with`` block ends without an error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), where it is skipped.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def table_bytes(frame: pd.DataFrame, fmt: str, header: bool = True) -> bytes:
    """Serialise a score table as ``.csv``, ``.jsonl`` or ``.parquet`` (missing scores: empty / null).

    ``header=False`` leaves out the csv header line (for the parts after the first of a streamed table).
    """
    if fmt == ".csv":
        return frame.to_csv(index=False, header=header).encode("utf-8")
    if fmt == ".jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False, double_precision=15)
        return (text if text.endswith("\n") or not text else text + "\n").encode("utf-8")
    if fmt == ".parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unsupported table format {fmt!r}; use one of {', '.join(OUTPUT_FORMATS)}")


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` atomically in the format named by the extension of ``path``."""
    atomic_write_bytes(path, table_bytes(frame, table_format(path)))


@contextlib.contextmanager
def table_writer(path: str | Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Write a table part by part (``with table_writer(p) as write: write(frame); write(frame) ...``), atomically.

    The parts must have the same columns; the file is what ``write_table`` of their concatenation writes (csv,
    jsonl: the same bytes; parquet: one row group per part, the first part's schema). Only one part is in memory
    at a time, so a table of any length streams to disk. At least one part (it may have no rows) must be written.
    """
    fmt = table_format(path)
    with atomic_file(path) as fh:
        parquet: list = []  # the ParquetWriter, once the first part has given the schema

        def write(frame: pd.DataFrame) -> None:
            if fmt != ".parquet":
                fh.write(table_bytes(frame, fmt, header=fh.tell() == 0))
                return
            import pyarrow as pa
            import pyarrow.parquet as pq

            if not parquet:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                parquet.append(pq.ParquetWriter(fh, table.schema))
            else:
                table = pa.Table.from_pandas(frame, schema=parquet[0].schema, preserve_index=False)
            parquet[0].write_table(table)

        yield write
        if parquet:
            parquet[0].close()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table as strings, keeping empty cells as ``""`` (so an empty prompt stays a prompt)."""
    path = Path(path)
    fmt = table_format(path, INPUT_FORMATS)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if fmt == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    if fmt == ".jsonl":
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        frame = pd.read_parquet(path)
    return frame.fillna("").astype(str)


def read_item_table(path: str | Path) -> tuple[list[tuple[str, str]], pd.DataFrame]:
    """``(image, prompt)`` rows of an input table and its other columns (as text, same row order).

    The error names the file and the missing column or the empty cell.
    """
    frame = read_table(path)
    missing = [c for c in ("image", "prompt") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; the table needs columns 'image' and 'prompt' "
            f"(found {list(frame.columns)})"
        )
    empty = frame.index[frame["image"].str.strip() == ""]
    if len(empty):
        raise ValueError(f"{path}: row {int(empty[0]) + 1} has an empty 'image' cell")
    rows = list(zip(frame["image"].tolist(), frame["prompt"].tolist(), strict=True))
    return rows, frame.drop(columns=["image", "prompt"]).reset_index(drop=True)
