"""The reference distribution a trained model's card carries: its predictions on its own training rows.

``agiqa train`` writes it into the run folder's card (``agiqa.models.reference`` explains what it is for).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agiqa.models.reference import Reference
from agiqa.train.features import FeatureBank

MAX_ROWS = 20_000
"""Above this many training rows a seeded random subset of this size is predicted (quantiles barely move)."""


def training_reference(
    bank: FeatureBank, rows: Sequence[int], source: str, max_rows: int = MAX_ROWS, seed: int = 0
) -> Reference | None:
    """Quantiles of the model's predictions on ``rows`` of its feature bank, model in eval mode.

    Args:
        bank: The run's features (the trained model is ``bank.model``).
        rows: The training rows.
        source: What the rows are (dataset and count), written into the card.
        max_rows: Predict at most this many rows (a seeded random subset beyond it).
        seed: Seed of that subset.

    Returns:
        The reference, or None when there are no rows or no dimension got a finite prediction.
    """
    picked = np.asarray(list(rows), dtype=np.int64)
    if picked.size > max_rows:
        picked = np.sort(np.random.default_rng(seed).choice(picked, max_rows, replace=False))
    if picked.size == 0:
        return None
    dims = {d.name for d in bank.model.dimensions}
    scores = {d: v for d, v in bank.predict(picked.tolist()).items() if d in dims and np.isfinite(v).any()}
    if not scores:
        return None
    return Reference.from_scores(scores, source=f"predictions on {picked.size} training images of {source}")
