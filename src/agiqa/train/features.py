"""Encoder features of every image of a run, computed once: ``FeatureBank``.

With the encoder frozen every image (and each extra view) and every prompt goes through the feature cache
(``agiqa.train.cache``) once, and batches are rows of the cached tensors; otherwise each batch is decoded and
encoded anew. Training, validation, the protocol's test predictions and its probes all read features here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agiqa.data.images import load_image
from agiqa.models.base import QualityModel
from agiqa.train.augment import ViewTransform
from agiqa.train.cache import cached_image_features, cached_text_features, content_hash, default_cache_dir
from agiqa.train.progress import WorkProgress
from agiqa.train.table import ImageTable


class FeatureBank:
    """Encoder features of every row of an ``ImageTable``: cached tensors, or encoded live per batch.

    Args:
        model: The model being trained.
        table: The images.
        cached: Precompute everything through the feature cache (encoder frozen).
        cache_dir: Cache root.
        views: Extra views per image ``[(name, transform)]`` (Stable Preference weak views).
        progress: Report progress while encoding (``agiqa.train.progress``: a bar on a terminal, log lines else).
    """

    def __init__(
        self,
        model: QualityModel,
        table: ImageTable,
        cached: bool,
        cache_dir: str | None = None,
        views: Sequence[tuple[str, ViewTransform]] = (),
        progress: bool = False,
    ) -> None:
        self.model, self.table, self.cached, self.views = model, table, cached, list(views)
        self.cache_dir = cache_dir
        self.prompts = list(dict.fromkeys(table.prompts))
        index = {p: i for i, p in enumerate(self.prompts)}
        self.prompt_row = torch.tensor([index[p] for p in table.prompts], dtype=torch.long)
        self.misses = 0
        self.image: list[dict[str, torch.Tensor]] = []
        self.text: dict[str, torch.Tensor] = {}
        if cached:
            hashes = [content_hash(ref) for ref in table.images]
            for name, transform in [("orig", None), *self.views]:
                with _reporter(f"encoding images ({name})", cache_dir, progress) as bar:
                    feats, store = cached_image_features(
                        model, table.images, cache_dir, view=name, transform=transform, hashes=hashes, **bar
                    )
                self.image.append(feats)
                self.misses += store.misses
            with _reporter("encoding prompts", cache_dir, progress) as bar:
                self.text, store = cached_text_features(model, self.prompts, cache_dir, **bar)
            self.misses += store.misses

    @contextmanager
    def prefitted(self, rows: Sequence[int]) -> Iterator[None]:
        """Fit the model's closed-form parts on ``rows`` (``QualityModel.prefit``) and serve the stand-in features
        it returns until the block ends; the model computes those features itself afterwards."""
        if not self.model.fits_in_closed_form:
            yield
            return
        name = self.model.name
        if not self.cached:
            raise ValueError(
                f"{name} fits a part in closed form on cached features; this run encodes live (train.cache off or an "
                "unfrozen encoder). Freeze the encoder (train.freeze.fraction: 1.0) or turn the closed-form part off"
            )
        if self.views:
            raise ValueError(
                f"{name} fits a part in closed form, which is not supported with extra views ({self.views[0][0]}, "
                "Stable Preference); turn the closed-form part (e.g. caption_match) or the weak views off"
            )
        everything = torch.arange(len(self.table.images))
        fit = torch.zeros(len(everything), dtype=torch.bool)
        fit[torch.as_tensor(list(rows), dtype=torch.long)] = True
        stand_in = self.model.prefit(self.batch(everything), fit, list(self.table.groups))
        self.image[0].update({k: v.to(self.prompt_row.device) for k, v in stand_in.items()})
        try:
            yield
        finally:
            for key in stand_in:
                self.image[0].pop(key, None)

    def to(self, device: str | torch.device) -> FeatureBank:
        """Move the cached features (e.g. to the GPU the head trains on)."""
        self.image = [{k: v.to(device) for k, v in feats.items()} for feats in self.image]
        self.text = {k: v.to(device) for k, v in self.text.items()}
        self.prompt_row = self.prompt_row.to(device)
        return self

    def batch(
        self, rows: torch.Tensor, view: int = 0, prompt_rows: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Features of the given rows (view 0 = original, ``v`` = extra view ``v - 1``).

        Args:
            rows: Table rows of the images.
            view: Which view of the images.
            prompt_rows: Rows of ``prompts`` to pair the images with instead of their own prompts.
        """
        if self.cached:
            rows = rows.to(self.prompt_row.device)
            prompt_rows = self.prompt_row[rows] if prompt_rows is None else prompt_rows.to(self.prompt_row.device)
            return {
                **{k: v[rows] for k, v in self.image[view].items()},
                **{k: v[prompt_rows] for k, v in self.text.items()},
            }
        transform = self.views[view - 1][1] if view else None
        pixels = []
        device = next(self.model.parameters()).device
        for r in rows.tolist():
            image = load_image(self.table.images[r])
            if transform is not None:
                image = transform(image, content_hash(self.table.images[r]))
            pixels.append(self.model.preprocess(image))
        if prompt_rows is None:
            prompts = [self.table.prompts[r] for r in rows.tolist()]
        else:
            prompts = [self.prompts[p] for p in prompt_rows.tolist()]
        return self.model.forward_features(torch.stack(pixels).to(device), prompts)

    @torch.no_grad()
    def predict(
        self,
        rows: Sequence[int],
        batch_size: int = 256,
        view: int = 0,
        prompt_rows: Sequence[int] | None = None,
        model: QualityModel | None = None,
    ) -> dict[str, np.ndarray]:
        """Scores ``{dimension: (len(rows),)}`` of the given rows, model in eval mode.

        Args:
            rows: Table rows of the images.
            batch_size: Rows per head call.
            view: Which view of the images.
            prompt_rows: Rows of ``prompts`` to score the images with instead of their own prompts.
            model: Score with this model instead (a part of the bank's model, ``QualityModel.loss_parts``).
        """
        model = model if model is not None else self.model
        was = model.training
        model.eval()
        out: dict[str, list[np.ndarray]] = {}
        rows_t = torch.as_tensor(list(rows), dtype=torch.long)
        prompts_t = None if prompt_rows is None else torch.as_tensor(list(prompt_rows), dtype=torch.long)
        for start in range(0, len(rows_t), batch_size):
            part = slice(start, start + batch_size)
            other = None if prompts_t is None else prompts_t[part]
            scores = model.forward_head(self.batch(rows_t[part], view, prompt_rows=other))
            for dim, s in scores.items():
                out.setdefault(dim, []).append(s.detach().float().cpu().numpy())
        model.train(was)
        return {d: np.concatenate(v) for d, v in out.items()}

    def prediction_frame(self, rows: Sequence[int], view: int = 0) -> pd.DataFrame:
        """``predict`` as a table: the ``image`` id of each row, then one column per dimension."""
        return pd.DataFrame({"image": [self.table.ids[r] for r in rows], **self.predict(rows, view=view)})


@contextmanager
def _reporter(label: str, cache_dir: str | None, show: bool) -> Iterator[dict[str, Any]]:
    """The ``progress`` / ``on_todo`` callbacks of the cache functions, reporting through a ``WorkProgress``."""
    if not show:
        yield {}
        return
    where = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    with WorkProgress(label) as bar:

        def on_todo(todo: int, cached: int) -> None:
            bar.start(todo, f"{cached} found in the feature cache ({where})")

        yield {"progress": bar.advance, "on_todo": on_todo}
