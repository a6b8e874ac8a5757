"""What scoring returns: ``ScoreResult`` (the scores of many items), ``Ranking`` (one prompt's images, best first)."""

from __future__ import annotations

from collections.abc import Sequence
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
        """Boolean mask of the items scored in every dimension."""
        return np.array([not e for e in self.errors], dtype=bool)

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per item: ``image, prompt, <dimensions>, [<dimension>_pct], error, warning``."""
        return [self[i] for i in range(len(self))]

    def to_pandas(self) -> pd.DataFrame:
        """The same table ``agiqa score`` writes."""
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

    Attributes:
        by: The dimension they are sorted by.
        records: One ``ScoreResult`` record per image (``image, prompt, <dimensions>, error, warning``).
    """

    by: ScoreSpec
    records: list[dict[str, Any]]

    @property
    def failed(self) -> int:
        """Images that could not be scored."""
        return sum(bool(r["error"]) for r in self.records)
