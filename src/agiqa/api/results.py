"""What scoring returns: ``ScoreResult`` (the scores of many items), ``Ranking`` (one prompt's images, best first)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from agiqa.models.card import ScoreSpec
from agiqa.pipeline.engine import Row
from agiqa.pipeline.resumable import rows_to_frame


@dataclass(frozen=True)
class ScoreResult:
    """Scores of a list of (image, prompt) items.

    Each dimension is also an attribute holding plain floats in item order, and a result of one image and one
    dimension converts with ``float``::

        result = scorer.score(["a.png", "b.png"], "a red bicycle")
        result.quality          # [3.12, 2.47]: list of float, NaN where not scored
        float(scorer.score("a.png", "a red bicycle").quality[0])

    Attributes:
        dimensions: What each score means (range, direction, whether it needs the prompt).
        images: Printable name of each image (its path, or ``<bytes: N>`` ...).
        prompts: The prompt of each item.
        scores: ``{dimension: (N,) float array}``; NaN where an item or a dimension failed.
        errors: Why an item (or some of its dimensions) failed; empty string when all is well.
        warnings: What the user should know about an item that was scored (e.g. a truncated prompt).
        percentiles: ``{dimension: (N,) percentile 0-100}`` against the model's reference, when asked
            (``Scorer.score(..., percentiles=True)``); they appear as ``<dimension>_pct`` in records and tables.
    """

    dimensions: tuple[ScoreSpec, ...]
    images: list[str]
    prompts: list[str]
    scores: dict[str, np.ndarray]
    errors: list[str]
    warnings: list[str]
    percentiles: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, rows: Sequence[Row], names: Sequence[str], prompts: Sequence[str], dims: Sequence[ScoreSpec]
    ) -> ScoreResult:
        """Collect ``Row`` objects (in item order) into a result."""
        return cls(
            dimensions=tuple(dims),
            images=[names[r.index] for r in rows],
            prompts=[prompts[r.index] for r in rows],
            scores={d.name: np.array([r.scores[d.name] for r in rows], dtype=np.float64) for d in dims},
            errors=[r.error for r in rows],
            warnings=[r.warning for r in rows],
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getattr__(self, name: str) -> list[float]:
        # result.quality: one dimension's scores as plain floats, in item order (NaN where not scored)
        if not name.startswith("_") and name in self.__dict__.get("scores", {}):
            return [float(v) for v in self.scores[name]]
        dims = ", ".join(self.__dict__.get("scores", {}))
        raise AttributeError(f"ScoreResult has no attribute {name!r}; its dimensions are {dims}")

    def __float__(self) -> float:
        if len(self) == 1 and len(self.scores) == 1:
            return float(next(iter(self.scores.values()))[0])
        dims = ", ".join(self.scores)
        raise TypeError(
            f"float() needs one image and one dimension; this result has {len(self)} image(s) and the dimensions "
            f"{dims}: use result.<dimension> (a list of floats), e.g. result.{next(iter(self.scores), 'quality')}"
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "image": self.images[index],
            "prompt": self.prompts[index],
            **{name: float(v[index]) for name, v in self.scores.items()},
            **{f"{name}_pct": float(v[index]) for name, v in self.percentiles.items()},
            "error": self.errors[index],
            "warning": self.warnings[index],
        }

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the items without an error (a dimension left out for want of a prompt is a warning)."""
        return np.array([not e for e in self.errors], dtype=bool)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per item: ``image, prompt, <dimensions>, [<dimension>_pct], error, warning``."""
        return [self[i] for i in range(len(self))]

    def to_pandas(self) -> pd.DataFrame:
        """The table ``agiqa score`` writes, without its ``model`` column."""
        rows = [
            Row(i, {n: float(v[i]) for n, v in self.scores.items()}, e, w)
            for i, (e, w) in enumerate(zip(self.errors, self.warnings, strict=True))
        ]
        frame = rows_to_frame(rows, self.images, self.prompts, self.dimensions)
        for name, values in self.percentiles.items():
            frame.insert(frame.columns.get_loc("error"), f"{name}_pct", values)
        return frame


def default_rank_dimension(names: Sequence[str]) -> str:
    """The dimension a ranking sorts by: preference, else quality, else alignment, else the first one."""
    return next((d for d in ("preference", "quality", "alignment") if d in names), names[0])


@dataclass(frozen=True)
class Ranking:
    """Scored images of one prompt, best first.

    Unpacks like ImageReward's ``inference_rank``: ``ranks, scores = scorer.rank(images, prompt)`` gives the rank of
    each image (1 = best) and its score on ``by``, both in the order the images were given.

    Attributes:
        by: The dimension they are sorted by.
        records: One ``ScoreResult`` record per image (``image, prompt, <dimensions>, error, warning``), best first;
            images that could not be scored come last.
        order: Position in the input of each record.
    """

    by: ScoreSpec
    records: list[dict[str, Any]]
    order: list[int] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Images that could not be scored."""
        return sum(bool(r["error"]) for r in self.records)

    @property
    def images(self) -> list[str]:
        """The images, best first."""
        return [r["image"] for r in self.records]

    @property
    def best(self) -> str:
        """The best image."""
        return self.records[0]["image"]

    @property
    def ranks(self) -> list[int]:
        """Rank of each image in input order (1 = best)."""
        ranks = [0] * len(self.order)
        for rank, position in enumerate(self.order, 1):
            ranks[position] = rank
        return ranks

    @property
    def scores(self) -> list[float]:
        """Score on ``by`` of each image in input order (NaN where it could not be scored)."""
        values = [math.nan] * len(self.order)
        for position, record in zip(self.order, self.records, strict=True):
            values[position] = float(record[self.by.name])
        return values

    def __iter__(self) -> Iterator[list[Any]]:
        return iter((self.ranks, self.scores))
