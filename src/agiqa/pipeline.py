"""Batched scoring that decodes in parallel, embeds each prompt once, and never loses finished work.

Two layers:

* ``iter_scores`` scores items batch by batch. Decoding and preprocessing (the model's picklable ``preprocess``) run
  in ``workers`` DataLoader worker processes while the model computes; the text tower runs once per unique prompt
  of a batch; inference runs under ``torch.inference_mode``. A bad image or a failing item becomes an ``error`` on
  its own row, never an exception for the batch. Nothing is padded: only the items that decoded are encoded.
* ``score_to_file`` writes the rows to csv/jsonl/parquet and can be interrupted at any time (Ctrl-C, ``kill -9``,
  power loss). Finished chunks of ``chunk_size`` items go to ``OUT.partial/chunk-NNNNNN.jsonl``, each written
  atomically, next to a ``manifest.json`` of what is being scored. A rerun with the same items and model skips the
  chunks that are done; the final ``OUT`` is assembled and renamed into place only at the end, after which the
  ``.partial`` folder is removed. Batches never cross chunk boundaries, so a resumed run computes exactly the same
  batches as an uninterrupted one and writes the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from agiqa.data.images import MAX_PIXELS, ImageLoadError, ImageRef, load_image
from agiqa.io import atomic_write_bytes, table_format, write_table
from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec

MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 512


@dataclass(frozen=True)
class Row:
    """The result for one item.

    Attributes:
        index: Position of the item in the input.
        scores: ``{dimension: score}``; NaN where the item or the dimension failed.
        error: Why something failed (empty when every dimension was scored).
        warning: Something the user should know that did not stop scoring (e.g. a truncated prompt).
    """

    index: int
    scores: dict[str, float]
    error: str = ""
    warning: str = ""


def default_workers() -> int:
    """Decoding processes used when none are asked for: one per spare core, at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class _DecodeDataset(Dataset):
    """Item index -> ``(index, pixel tensor or None, error)``; runs in DataLoader workers."""

    def __init__(self, images: Sequence[ImageRef], preprocess: Callable[[Any], torch.Tensor], max_pixels: int) -> None:
        self.images = images
        self.preprocess = preprocess
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return index, self.preprocess(load_image(self.images[index], self.max_pixels)), ""
        except ImageLoadError as exc:
            return index, None, f"image: {exc.reason}"
        except Exception as exc:  # a broken image must not stop the batch, whatever the decoder throws
            return index, None, f"preprocessing failed: {type(exc).__name__}: {exc}"


def _collate(
    batch: list[tuple[int, torch.Tensor | None, str]],
) -> tuple[list[int], torch.Tensor | None, dict]:
    ok = [(i, x) for i, x, _ in batch if x is not None]
    errors = {i: err for i, x, err in batch if x is None}
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return [i for i, _ in ok], pixels, errors


def score_batch(model: QualityModel, pixel_values: torch.Tensor, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Scores of a batch, running the text tower once per unique prompt (autograd is left as the caller set it)."""
    unique = list(dict.fromkeys(prompts))
    where = {p: k for k, p in enumerate(unique)}
    text = model.text_features(unique)
    index = torch.tensor([where[p] for p in prompts], dtype=torch.long)
    features = dict(model.image_features(pixel_values))
    features.update({k: v.index_select(0, index.to(v.device)) for k, v in text.items()})
    return model.forward_head(features)


def count_text_tokens(encoder: torch.nn.Module, texts: Sequence[str]) -> list[int] | None:
    """Number of tokens of each text before truncation, or None when the encoder gives no way to count.

    Uses the encoder's ``text_token_counts(texts)`` when it has one, else its Hugging Face ``tokenizer``.
    """
    counter = getattr(encoder, "text_token_counts", None)
    if callable(counter):
        return [int(n) for n in counter(list(texts))]
    tokenizer = getattr(encoder, "tokenizer", None)
    if callable(tokenizer):
        return [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    return None


def prompt_warnings(model: QualityModel, prompts: Sequence[str]) -> dict[str, str]:
    """``{prompt: warning}`` for prompts longer than the text tower takes (they are truncated by the encoder)."""
    limit = getattr(model.encoder, "max_text_tokens", None)
    unique = [p for p in dict.fromkeys(prompts) if p.strip()]
    if not limit or not unique:
        return {}
    counts = count_text_tokens(model.encoder, unique)
    if counts is None:
        return {p: f"prompt length not checked: encoder {model.encoder.name!r} gives no token count" for p in unique}
    return {
        p: f"prompt truncated: {n} tokens, the text tower takes {limit}; the rest was ignored"
        for p, n in zip(unique, counts, strict=True)
        if n > limit
    }


def _rows_for_batch(
    model: QualityModel, indices: list[int], pixels: torch.Tensor, prompts: list[str], device: torch.device
) -> list[Row]:
    dims: tuple[ScoreSpec, ...] = model.dimensions
    scores = score_batch(model, pixels.to(device), prompts)
    values = {d.name: scores[d.name].detach().float().cpu().reshape(-1).tolist() for d in dims}
    warnings = prompt_warnings(model, prompts)
    prompt_dims = [d.name for d in dims if d.needs_prompt]
    rows = []
    for k, (index, prompt) in enumerate(zip(indices, prompts, strict=True)):
        row = {name: v[k] for name, v in values.items()}
        errors = []
        if prompt_dims and not prompt.strip():
            row.update(dict.fromkeys(prompt_dims, math.nan))
            errors.append(f"empty prompt: {', '.join(prompt_dims)} need(s) a prompt")
        bad = [n for n, s in row.items() if not math.isfinite(s) and not (n in prompt_dims and errors)]
        if bad:
            errors.append(f"model gave a non-finite score for {', '.join(bad)}")
        rows.append(Row(index, row, "; ".join(errors), warnings.get(prompt, "")))
    return rows


def score_rows(
    model: QualityModel, indices: list[int], pixels: torch.Tensor, prompts: list[str], device: torch.device
) -> list[Row]:
    """Rows of a preprocessed batch; if the batch fails, its items are scored one by one so only the culprit fails.

    Call under ``torch.inference_mode()`` (``iter_scores`` does).
    """
    try:
        return _rows_for_batch(model, indices, pixels, prompts, device)
    except Exception as exc:
        if len(indices) == 1:
            nan = dict.fromkeys((d.name for d in model.dimensions), math.nan)
            return [Row(indices[0], nan, f"model failed: {type(exc).__name__}: {exc}")]
    rows = []
    for k in range(len(indices)):
        rows += score_rows(model, indices[k : k + 1], pixels[k : k + 1], prompts[k : k + 1], device)
    return rows


def iter_scores(
    model: QualityModel,
    images: Sequence[ImageRef],
    prompts: Sequence[str],
    batch_size: int = 16,
    workers: int = 0,
    batches: Sequence[Sequence[int]] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[list[Row]]:
    """Score ``(images[i], prompts[i])`` and yield the rows of each batch, in order.

    Args:
        model: A model in eval mode (its device is where inputs are sent).
        images: Image references (paths, bytes, PIL images, arrays); decoded by ``load_image``.
        prompts: One prompt per image.
        batch_size: Items per model call (ignored when ``batches`` is given).
        workers: Decoding processes; 0 decodes in this process.
        batches: Explicit lists of item indices, one per batch (used to skip finished chunks).
        max_pixels: Larger images are refused (see ``agiqa.data.images``).
    """
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts; give one prompt per image")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batches is None:
        batches = [range(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size)]
    batches = [list(b) for b in batches if len(b)]
    if not batches:
        return
    if workers > 0:
        # Workers are forked after the tokenizer may have run; keep Hugging Face tokenizers from warning about it.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    loader = DataLoader(
        _DecodeDataset(images, model.preprocess, max_pixels),
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=4 if workers > 0 else None,
    )
    device = next(model.parameters(), torch.empty(0)).device
    with torch.inference_mode():
        for batch, (ok, pixels, errors) in zip(batches, loader, strict=True):
            rows = {
                i: Row(i, dict.fromkeys((d.name for d in model.dimensions), math.nan), e) for i, e in errors.items()
            }
            if ok:
                rows.update({r.index: r for r in score_rows(model, ok, pixels, [prompts[i] for i in ok], device)})
            yield [rows[i] for i in batch]


# ----------------------------------------------------------------------------------------------- tables and files


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
    card = getattr(model, "card", None)
    ident: dict[str, Any] = {"class": type(model).__name__, "dimensions": [d.name for d in model.dimensions]}
    if card is not None:
        ident["card"] = card.to_dict()
        from agiqa.models.registry import weights_path

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

    Args:
        model: A model in eval mode.
        images: Image references, normally paths.
        prompts: One prompt per image.
        out: Output file; written only when every item is scored.
        names: What to write in the ``image`` column (default: ``str(images[i])``).
        batch_size: Items per model call.
        workers: Decoding processes (0: decode in this process).
        chunk_size: Items per saved chunk; part of the run's identity (a rerun must use the same).
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
        ValueError: ``OUT.partial`` belongs to a run with other items, model or chunk size.
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
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it, or choose another file")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")

    dims = model.dimensions
    dim_names = [d.name for d in dims]
    manifest = {
        "agiqa_partial": MANIFEST_VERSION,
        "out_format": fmt,
        "model": _model_identity(model),
        "n_items": len(images),
        "items_sha256": _items_digest(names, images, prompts),
        "chunk_size": chunk_size,
    }
    folder = partial_dir(out)
    if restart:
        shutil.rmtree(folder, ignore_errors=True)
    _open_partial(folder, manifest, out)

    n_chunks = math.ceil(len(images) / chunk_size)
    spans = [range(k * chunk_size, min((k + 1) * chunk_size, len(images))) for k in range(n_chunks)]
    done: dict[int, list[Row]] = {}
    for k, span in enumerate(spans):
        rows = _read_chunk(_chunk_path(folder, k), span, dim_names)
        if rows is not None:
            done[k] = rows
    resumed = sum(len(spans[k]) for k in done)
    if on_start is not None:
        on_start(len(images), resumed)

    todo = [k for k in range(n_chunks) if k not in done]
    batches = [list(spans[k][s : s + batch_size]) for k in todo for s in range(0, len(spans[k]), batch_size)]
    pending: dict[int, Row] = {}
    next_todo = 0
    for rows in iter_scores(model, images, prompts, batch_size, workers, batches, max_pixels):
        pending.update({r.index: r for r in rows})
        while next_todo < len(todo) and spans[todo[next_todo]][-1] in pending:
            k = todo[next_todo]
            chunk = [pending.pop(i) for i in spans[k]]
            atomic_write_bytes(_chunk_path(folder, k), _chunk_bytes(chunk))
            done[k] = chunk
            next_todo += 1
        if on_progress is not None:
            on_progress(len(rows))

    all_rows = [r for k in range(n_chunks) for r in done[k]]
    write_table(rows_to_frame(all_rows, names, prompts, dims, extra), out)
    shutil.rmtree(folder, ignore_errors=True)
    return RunSummary(
        total=len(all_rows),
        failed=sum(bool(r.error) for r in all_rows),
        warned=sum(bool(r.warning) for r in all_rows),
        resumed=resumed,
        out=out,
    )


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
        raise ValueError(
            f"{folder} holds an unfinished run with a different {', '.join(differ)} than this one; rerun with "
            f"the arguments of that run to finish it, or delete {folder} (or pass --restart) to start over"
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, wanted.encode("utf-8"))


# ----------------------------------------------------------------------------------------------- finding items

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``paths``: files as given, folders searched recursively (sorted, by extension).

    Raises:
        FileNotFoundError: A path does not exist.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def resolve_image(name: str, roots: Sequence[Path]) -> Path:
    """Where the image ``name`` of a table is: absolute as is, else the first of ``roots / name`` that exists.

    When none exists the last candidate is returned, and decoding it reports the missing file.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or not roots:
        return path
    candidates = [root / path for root in roots]
    return next((c for c in candidates if c.exists()), candidates[-1])
