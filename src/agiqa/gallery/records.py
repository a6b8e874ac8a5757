"""Scored items as the gallery shows them: each score with its level word and, with a reference, its percentile.

The level words are ``agiqa.explain.structured.level_of``'s (bad, poor, fair, good, perfect); percentiles come from
the model card's reference (``agiqa.models.reference``). The page and the static report get the same records, so
the browser only displays and sorts, it never re-derives what a score means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from agiqa.explain.structured import LEVELS, level_of
from agiqa.models.card import ScoreSpec
from agiqa.models.reference import Reference


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def annotate_scores(
    record: Mapping[str, Any], dimensions: Sequence[ScoreSpec], reference: Reference | None
) -> dict[str, Any]:
    """``<dim>``, ``<dim>_level`` and ``<dim>_pct`` of one item (None where the score is missing)."""
    out: dict[str, Any] = {}
    for spec in dimensions:
        score = _number(record.get(spec.name))
        out[spec.name] = score
        out[f"{spec.name}_level"] = level_of(score, spec) if score is not None else None
        pct = None
        if score is not None and reference is not None and spec.name in reference.quantiles:
            pct = float(reference.percentile(spec.name, [score])[0])
        elif reference is None:
            pct = _number(record.get(f"{spec.name}_pct"))  # a table written with --percentiles
        out[f"{spec.name}_pct"] = pct
    return out


def gallery_model(name: str, dimensions: Sequence[ScoreSpec], reference: Reference | None) -> dict[str, Any]:
    """What the page needs to know about the model: its dimensions (range, direction) and the level words."""
    return {
        "model": name,
        "levels": list(LEVELS),
        "dimensions": [
            {
                "name": d.name,
                "low": d.low,
                "high": d.high,
                "higher_is_better": d.higher_is_better,
                "description": d.description,
                "reference": reference is not None and d.name in reference.quantiles,
            }
            for d in dimensions
        ],
        "reference_source": reference.source if reference is not None else None,
    }
