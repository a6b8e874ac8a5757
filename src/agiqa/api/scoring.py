"""Scoring: ``agiqa.load(name)`` gives a ``Scorer``; ``scorer.score(images, prompts)`` gives scores.

>>> scorer = agiqa.load()                                    # doctest: +SKIP
>>> result = scorer.score(["a.png", "b.jpg"], "a red bicycle")  # doctest: +SKIP
>>> result.to_pandas()                                       # doctest: +SKIP

What ``images`` may hold, item by item: a path, encoded bytes, a ``PIL.Image``, a numpy array (``uint8`` or float in
[0, 1], ``(H, W[, C])``) or a ``(3, H, W)`` float tensor in [0, 1]; all are decoded by ``agiqa.data.images.load_image``
and preprocessed by the model. A single ``(B, 3, S, S)`` tensor is taken as already preprocessed pixel values (the
output of ``scorer.preprocess``) and goes to the model as is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from agiqa.api.models import model_card
from agiqa.api.results import Ranking, ScoreResult, default_rank_dimension
from agiqa.data.images import MAX_PIXELS, ImageRef, describe_ref, load_image
from agiqa.encoders.fast import accelerate
from agiqa.models.base import QualityModel
from agiqa.models.card import ScoreSpec
from agiqa.models.reference import Reference, card_reference, require_reference
from agiqa.models.registry import create_model, model_reference
from agiqa.models.state import UNTRAINED, model_state, untrained_warning
from agiqa.pipeline import resumable
from agiqa.pipeline.engine import Row, default_workers, iter_scores, score_batch, score_rows
from agiqa.pipeline.resumable import DEFAULT_CHUNK_SIZE, RunSummary

if TYPE_CHECKING:
    from agiqa.explain import Explanation

DEFAULT_MODEL = "agiqa-lite"
"""The model ``agiqa.load()`` and ``agiqa score`` use when none is named."""


class Scorer:
    """A model ready to score images: decoding, batching, prompt handling and a differentiable path.

    Args:
        model: A ``QualityModel`` (it is put in eval mode).
        max_pixels: Larger images are refused (see ``agiqa.data.images``).
        model_id: How score tables name the model (the ``model`` column ``score_to_file`` writes, which
            ``agiqa evaluate`` reads to find the model's training set): a registered name or a model folder's
            absolute path. Default: the model's name.
    """

    def __init__(self, model: QualityModel, max_pixels: int = MAX_PIXELS, model_id: str | None = None) -> None:
        self.model = model.eval()
        self.max_pixels = max_pixels
        self.model_id = model_id or model.name
        self._affine: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def name(self) -> str:
        """Name of the model card (or the model class when it has no card)."""
        return self.model.name

    @property
    def dimensions(self) -> tuple[ScoreSpec, ...]:
        """What each score means: name, range (``low``, ``high``), ``higher_is_better``, ``needs_prompt``."""
        return self.model.dimensions

    @property
    def runtime(self) -> str:
        """How the image tower runs: ``onnx`` (ONNX Runtime, see ``agiqa.encoders.fast``) or ``eager``."""
        return "onnx" if getattr(self.model.encoder, "fast_tower", None) is not None else "eager"

    @property
    def reference(self) -> Reference | None:
        """Quantiles of the model's scores on its training images (``agiqa.models.reference``); None if absent."""
        return card_reference(self.model.card) if self.model.card is not None else None

    def percentiles(self, scores: dict[str, Any]) -> dict[str, np.ndarray]:
        """``{dimension: percentile 0-100}`` of ``{dimension: scores}`` against the model's reference.

        Raises:
            NoReferenceError: The model's card has no reference distribution.
        """
        reference = require_reference(self.model.card, self.name)
        return {d: reference.percentile(d, v) for d, v in scores.items() if d in reference.quantiles}

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return next(self.model.parameters(), torch.empty(0)).device

    def __repr__(self) -> str:
        dims = ", ".join(d.name for d in self.dimensions)
        return f"Scorer({self.name!r}, dimensions=[{dims}], device={self.device}, runtime={self.runtime!r})"

    def explain(self, image: ImageRef, prompt: str = "", **kwargs: Any) -> Explanation:
        """Why the model scores ``image`` as it does (``agiqa.explain.explain``: levels, weakest phrases, worst region).

        Args:
            image: Path, bytes or decoded image.
            prompt: The prompt the image was generated from.
            **kwargs: ``grid``, ``n_phrases``, ``weakest`` (see ``agiqa.explain.explain``).
        """
        from agiqa.explain import explain

        return explain(self.model, image, prompt, model_name=self.name, **kwargs)

    def score_to_file(
        self,
        images: Sequence[ImageRef],
        prompts: Sequence[str],
        out: str | Path,
        names: Sequence[str] | None = None,
        batch_size: int = 16,
        workers: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        overwrite: bool = False,
        restart: bool = False,
        on_start: Callable[[int, int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        extra: pd.DataFrame | None = None,
    ) -> RunSummary:
        """Score every item into ``out`` (csv / jsonl / parquet), resuming an interrupted run of the same items.

        See ``agiqa.pipeline.resumable.score_to_file`` for the arguments; ``workers`` None uses one decoding
        process per spare core (at most four). Besides the input's columns, the table gets a ``model`` column
        (``model_id``: which model wrote it, so that ``agiqa evaluate`` can check what it was trained on) before
        the scores.

        Raises:
            ValueError: ``extra`` has a column named ``model``.
            FileExistsError: ``out`` exists and ``overwrite`` is False.
            FileNotFoundError: The folder of ``out`` does not exist.
            OutputLocked: Another run is writing ``out`` (its message names that run).
            PartialRunMismatch: ``OUT.partial`` belongs to another run (``restart=True`` discards it).
        """
        if extra is not None and "model" in extra.columns:
            raise ValueError(
                "input column 'model' clashes with the score table's own `model` column (the model that wrote the "
                "scores); rename it in the input table"
            )
        column = pd.DataFrame({"model": [self.model_id] * len(images)})
        extra = column if extra is None else pd.concat([extra.reset_index(drop=True), column], axis=1)
        return resumable.score_to_file(
            self.model,
            images,
            prompts,
            out,
            names=names,
            batch_size=batch_size,
            workers=default_workers() if workers is None else workers,
            chunk_size=chunk_size,
            overwrite=overwrite,
            restart=restart,
            max_pixels=self.max_pixels,
            on_start=on_start,
            on_progress=on_progress,
            extra=extra,
        )

    def rank(self, images: Sequence[ImageRef], prompt: str, by: str | None = None, batch_size: int = 16) -> Ranking:
        """Images of one prompt, best first by one dimension (its direction respected); failed images last.

        ``ranks, scores = scorer.rank(images, prompt)`` gives each image's rank (1 = best) and score in input order,
        as ImageReward's ``inference_rank`` does; ``ranking.best`` and ``ranking.records`` give the winners.

        Args:
            images: The candidates (best-of-N for ``prompt``).
            prompt: The prompt they were generated from.
            by: Dimension to sort by (default: ``preference``, else ``quality``, else ``alignment``, else the first).
            batch_size: Items per model call.

        Raises:
            ValueError: ``by`` is not a dimension of the model.
        """
        names = [d.name for d in self.dimensions]
        key = by or default_rank_dimension(names)
        if key not in names:
            raise ValueError(f"dimension {key!r}: model {self.name} has dimensions {', '.join(names)}")
        spec = next(d for d in self.dimensions if d.name == key)
        result = self.score(list(images), prompt, batch_size=batch_size)
        values = result.scores[key]
        sign = 1.0 if spec.higher_is_better else -1.0
        order = sorted(range(len(result)), key=lambda i: (math.isnan(values[i]), -sign * np.nan_to_num(values[i])))
        return Ranking(spec, [result[i] for i in order], order)

    def preprocess(self, image: ImageRef) -> torch.Tensor:
        """Decode one image and turn it into the model's ``(3, S, S)`` input."""
        return self.model.preprocess(load_image(image, self.max_pixels))

    def score(
        self,
        images: ImageRef | Sequence[ImageRef] | torch.Tensor,
        prompts: str | Sequence[str] | None = None,
        batch_size: int = 16,
        workers: int = 0,
        percentiles: bool = False,
    ) -> ScoreResult:
        """Score images against prompts, without autograd; bad items get an ``error``, never an exception.

        Args:
            images: One image, a list of images, or a ``(B, 3, S, S)`` tensor of preprocessed pixel values.
            prompts: One prompt for all images, one per image, or None. Without a prompt (None or an empty one)
                the dimensions that need none are scored and the others are NaN with a warning (an error only when
                every dimension needs the prompt).
            batch_size: Items per model call; scores do not depend on it.
            workers: Decoding processes (0 decodes in this process; worth it for hundreds of files).
            percentiles: Also give each score's percentile against the model's reference distribution
                (``result.percentiles``, ``<dimension>_pct`` in records and tables).

        Returns:
            A ``ScoreResult`` in the order of ``images``.

        Raises:
            NoReferenceError: ``percentiles=True`` for a model whose card has no reference distribution.
        """
        if percentiles:
            require_reference(self.model.card, self.name)  # refused before any scoring
            result = self.score(images, prompts, batch_size=batch_size, workers=workers)
            return dataclasses.replace(result, percentiles=self.percentiles(result.scores))
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            return self._score_pixels(images, self._prompts(prompts, images.shape[0]), batch_size)
        if isinstance(images, str | bytes | Image.Image) or not isinstance(
            images, Sequence | torch.Tensor | np.ndarray
        ):
            images = [images]
        elif isinstance(images, np.ndarray | torch.Tensor) and images.ndim in (2, 3):
            images = [images]
        items = list(images)
        texts = self._prompts(prompts, len(items))
        rows = [
            r
            for batch in iter_scores(self.model, items, texts, batch_size, workers, max_pixels=self.max_pixels)
            for r in batch
        ]
        return ScoreResult.from_rows(rows, [describe_ref(x) for x in items], texts, self.dimensions)

    def _score_pixels(self, pixels: torch.Tensor, prompts: list[str], batch_size: int) -> ScoreResult:
        rows: list[Row] = []
        with torch.inference_mode():
            for start in range(0, pixels.shape[0], batch_size):
                idx = list(range(start, min(start + batch_size, pixels.shape[0])))
                rows += score_rows(self.model, idx, pixels[idx], [prompts[i] for i in idx], self.device)
        names = [f"<tensor {i}>" for i in range(pixels.shape[0])]
        return ScoreResult.from_rows(rows, names, prompts, self.dimensions)

    @staticmethod
    def _prompts(prompts: str | Sequence[str] | None, n: int) -> list[str]:
        if prompts is None:
            return [""] * n
        if isinstance(prompts, str):
            return [prompts] * n
        texts = ["" if p is None else str(p) for p in prompts]
        if len(texts) != n:
            raise ValueError(f"`prompts` has {len(texts)} entries for {n} images; give one per image or a single str")
        return texts

    def score_tensor(
        self, images: torch.Tensor, prompts: str | Sequence[str], preprocessed: bool = False
    ) -> dict[str, torch.Tensor]:
        """Differentiable scores, for use as a reward: autograd flows back to ``images``.

        Args:
            images: ``(B, 3, H, W)`` (or ``(3, H, W)``) RGB float in [0, 1]. They are resized (bilinear, antialiased)
                so the shorter side is the model's ``image_size``, centre-cropped to a square, and normalised with
                the per-channel map the model's own ``preprocess`` applies. With ``preprocessed=True`` they must
                already be the model's input (output of ``preprocess``) and are used as is.
            prompts: One prompt for all images or one per image.
            preprocessed: See ``images``.

        Returns:
            ``{dimension: (B,) tensor}`` attached to the autograd graph (the model stays in eval mode).
        """
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must be (B, 3, H, W), got shape {tuple(images.shape)}")
        texts = self._prompts(prompts, images.shape[0])
        pixels = images if preprocessed else self._differentiable_preprocess(images)
        return score_batch(self.model, pixels.to(self.device), texts)

    def _differentiable_preprocess(self, images: torch.Tensor) -> torch.Tensor:
        size = int(self.model.encoder.image_size)
        h, w = images.shape[-2:]
        scale = size / min(h, w)
        new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        if (new_h, new_w) != (h, w):
            images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        images = images[..., top : top + size, left : left + size]
        shift, gain = self._normalisation()
        return images * gain.to(images) + shift.to(images)

    def _normalisation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(shift, gain)`` with ``preprocess(x) = shift + gain * x``, measured on flat images."""
        if self._affine is None:
            size = int(self.model.encoder.image_size)
            probe = {v: self.model.preprocess(Image.new("RGB", (size, size), (v, v, v))) for v in (0, 128, 255)}
            level = {v: t.float().mean(dim=(1, 2)) for v, t in probe.items()}
            shift, gain = level[0], level[255] - level[0]
            flat = all(float((t - level[v][:, None, None]).abs().max()) < 1e-4 for v, t in probe.items())
            mid = shift + gain * (128 / 255)
            if not flat or not torch.allclose(level[128], mid, atol=1e-3 * float(gain.abs().max()) + 1e-6):
                raise NotImplementedError(
                    f"model {self.name!r}: its preprocess is not a per-channel affine map of the pixels, so "
                    "score_tensor cannot reproduce it; pass preprocessed=True with the model's own input"
                )
            self._affine = (shift.view(1, 3, 1, 1), gain.view(1, 3, 1, 1))
        return self._affine


def load(
    name_or_path: str | None = None,
    device: str | torch.device = "cpu",
    max_pixels: int = MAX_PIXELS,
    threads: int | None = None,
    runtime: str = "auto",
    allow_untrained: bool = False,
) -> Scorer:
    """Load a model as a ``Scorer``; a model without trained weights is refused unless asked for.

    Args:
        name_or_path: A registered model name (see ``agiqa models``), ``local-dir:/path`` or a folder written by
            ``agiqa train``; None for ``DEFAULT_MODEL``.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        max_pixels: Larger images are refused as possible decompression bombs (see ``agiqa.data.images``).
        threads: CPU threads of the model (torch's, for the whole process, and ONNX Runtime's); None leaves torch's
            setting as it is (see ``default_threads`` for what ``agiqa score`` and ``agiqa serve`` use).
        runtime: How the image tower runs: ``auto`` (ONNX Runtime on a CPU where the encoder allows it, else
            PyTorch), ``onnx`` or ``eager``; the scores are the same (``agiqa.encoders.fast``).
        allow_untrained: Load an ``untrained`` model (``agiqa.models.state``) anyway; every score it gives then
            carries a warning saying it means nothing.

    Returns:
        The scorer, in eval mode on ``device``.

    Raises:
        ValueError: Unknown ``runtime``, ``threads`` below 1, or ``runtime='onnx'`` where it cannot run.
        KeyError: Unknown model name.
        FileNotFoundError: No such model folder, or its weights are missing.
        UntrainedModelError: The model is untrained and ``allow_untrained`` is False (the message says how to
            train it or which models are trained).
    """
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    name = DEFAULT_MODEL if name_or_path is None else name_or_path
    card = model_card(name, allow_untrained=allow_untrained)
    model = create_model(name, device=device)
    accelerate(model.encoder, runtime, threads=torch.get_num_threads(), device=str(device))
    if model_state(card) == UNTRAINED:
        model.score_warning = untrained_warning(name)
    return Scorer(model, max_pixels=max_pixels, model_id=model_reference(name))
