"""Batched scoring that decodes in parallel and embeds each prompt once: ``iter_scores``.

Decoding and preprocessing (the model's picklable ``preprocess``) run in ``workers`` DataLoader worker processes
while the model computes; the text tower runs once per unique prompt of a batch; inference runs under
``torch.inference_mode``. A bad image or a failing item becomes an ``error`` on its own row, never an exception
for the batch. An item without a prompt keeps the dimensions that need none; the others are NaN with a warning
(``alignment not scored: no prompt``). Nothing is padded: only the items that decoded are encoded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from agiqa.data.images import MAX_PIXELS, ImageLoadError, ImageRef, load_image
from agiqa.encoders.tokenize import clip_text, text_char_limit
from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec


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


def default_threads(workers: int = 0) -> int:
    """Model threads when none are asked for: the cores that ``workers`` decoding processes leave, at least one.

    On the 2-core machine agiqa is measured on, one model thread beside one decoding worker is what ``agiqa score``
    uses; with other jobs on the cores, one thread also ran faster than two for the model alone
    (``benchmarks/results/score_throughput.md``).
    """
    return max(1, (os.cpu_count() or 1) - workers)


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
    """Scores of a batch, running the text tower once per unique prompt (autograd is left as the caller set it).

    Prompts are cut to what the text tower can use (``clip_text``) before the model sees them, so a huge prompt
    costs no more than a long one, in the method's own text handling (level prompts, words) as in tokenizing.
    """
    limit = model.encoder.max_text_tokens
    prompts = [clip_text(p, limit) for p in prompts] if limit else list(prompts)
    unique = list(dict.fromkeys(prompts))
    where = {p: k for k, p in enumerate(unique)}
    text = model.text_features(unique)
    index = torch.tensor([where[p] for p in prompts], dtype=torch.long)
    features = dict(model.image_features(pixel_values))
    features.update({k: v.index_select(0, index.to(v.device)) for k, v in text.items()})
    return model.forward_head(features)


def prompt_warnings(model: QualityModel, prompts: Sequence[str]) -> dict[str, str]:
    """``{prompt: warning}`` for prompts longer than the text tower takes (they are truncated by the encoder)."""
    limit = model.encoder.max_text_tokens
    unique = [p for p in dict.fromkeys(prompts) if p.strip()]
    if not limit or not unique:
        return {}
    counts = model.encoder.text_token_counts([clip_text(p, limit) for p in unique])
    if counts is None:
        return {p: f"prompt length not checked: encoder {model.encoder.name!r} gives no token count" for p in unique}
    chars = text_char_limit(limit)
    return {
        p: (
            f"prompt truncated: {n} tokens, the text tower takes {limit}; the rest was ignored"
            if len(p) <= chars
            else f"prompt truncated: {len(p)} characters, more than the text tower's {limit} tokens; the rest "
            "was ignored"
        )
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
        errors, notes = [], [warnings.get(prompt, "")]
        unscored = prompt_dims if prompt_dims and not prompt.strip() else []
        if unscored:
            row.update(dict.fromkeys(unscored, math.nan))
            if len(unscored) == len(dims):
                errors.append(f"no prompt: every dimension of the model ({', '.join(unscored)}) needs one")
            else:
                notes.append(f"{', '.join(unscored)} not scored: no prompt")
        bad = [n for n, s in row.items() if not math.isfinite(s) and n not in unscored]
        if bad:
            errors.append(f"model gave a non-finite score for {', '.join(bad)}")
        notes.append(model.score_warning)
        rows.append(Row(index, row, "; ".join(errors), "; ".join(n for n in notes if n)))
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
