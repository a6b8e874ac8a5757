"""A model's reference distribution: the quantiles of its own scores on its training images, kept in its card.

With it a raw score becomes a percentile ("better than 73% of the images this model was trained on") and a
threshold can be written as a percentile (``quality>=p60``). The card stores, per dimension, ``101`` quantiles
``p0 .. p100`` of the predictions::

    reference:
      source: predictions of agiqa-lite on its 2386 training images (AGIQA-3K)
      n: 2386
      quantiles:
        quality: [0.21, 0.35, ..., 4.41]     # p0, p1, ..., p100

``percentile(x)`` interpolates linearly between the quantiles (a monotone map, 0 below ``p0``, 100 above ``p100``;
where several quantiles are equal, a score equal to them gets the middle of their percentiles). ``value(p)`` is the
inverse: the score at percentile ``p``. Percentiles are of the raw score, whatever the dimension's direction: for a
lower-is-better dimension a low percentile is a good score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

N_QUANTILES = 101
"""Quantiles stored per dimension: p0, p1, ..., p100."""


class NoReferenceError(ValueError):
    """A percentile was asked of a model whose card has no reference distribution."""


@dataclass(frozen=True)
class Reference:
    """Quantiles of a model's scores on a reference set (its training images), per dimension.

    Attributes:
        quantiles: ``{dimension: (Q,) non-decreasing array}``, the scores at percentiles ``linspace(0, 100, Q)``.
        n: Number of images the quantiles were computed from.
        source: What the reference set is, for people reading the card.
    """

    quantiles: dict[str, np.ndarray]
    n: int
    source: str = ""

    @classmethod
    def from_scores(cls, scores: Mapping[str, Any], source: str = "", n_quantiles: int = N_QUANTILES) -> Reference:
        """The quantiles of ``scores`` (``{dimension: values}``; NaN values are left out).

        Raises:
            ValueError: A dimension has no finite score.
        """
        quantiles, counts = {}, []
        for dim, values in scores.items():
            v = np.asarray(values, dtype=np.float64).ravel()
            v = v[np.isfinite(v)]
            if v.size == 0:
                raise ValueError(f"reference: dimension {dim!r} has no finite score to take quantiles of")
            quantiles[dim] = np.quantile(v, np.linspace(0.0, 1.0, n_quantiles))
            counts.append(v.size)
        return cls(quantiles, int(max(counts, default=0)), source)

    @classmethod
    def from_card_value(cls, value: Mapping[str, Any], where: str) -> Reference:
        """Read the ``reference`` mapping of a card; ``where`` (the card file) is named in errors.

        Raises:
            ValueError: The mapping lacks ``quantiles``, or a dimension's list is too short or decreasing.
        """
        if not isinstance(value, Mapping) or not isinstance(value.get("quantiles"), Mapping):
            raise ValueError(f"{where}: `reference` must be a mapping with `quantiles: {{dimension: [p0 .. p100]}}`")
        quantiles = {}
        for dim, values in value["quantiles"].items():
            q = np.asarray(values, dtype=np.float64)
            if q.ndim != 1 or q.size < 2 or not np.all(np.isfinite(q)):
                raise ValueError(f"{where}: reference.quantiles.{dim} must be a list of at least 2 finite numbers")
            if np.any(np.diff(q) < 0):
                raise ValueError(f"{where}: reference.quantiles.{dim} must be non-decreasing (p0 first)")
            quantiles[str(dim)] = q
        return cls(quantiles, int(value.get("n", 0)), str(value.get("source", "")))

    def to_card_value(self, digits: int = 5) -> dict[str, Any]:
        """The mapping stored in a card (plain floats rounded to ``digits`` decimals)."""
        return {
            "source": self.source,
            "n": self.n,
            "quantiles": {d: [round(float(x), digits) for x in q] for d, q in self.quantiles.items()},
        }

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Dimensions with a reference."""
        return tuple(self.quantiles)

    def _grid(self, dim: str) -> tuple[np.ndarray, np.ndarray]:
        if dim not in self.quantiles:
            known = ", ".join(self.quantiles) or "none"
            raise NoReferenceError(f"no reference distribution for dimension {dim!r} (the card has: {known})")
        q = self.quantiles[dim]
        return q, np.linspace(0.0, 100.0, q.size)

    def percentile(self, dim: str, scores: Any) -> np.ndarray:
        """Percentile (0-100) of each score against the reference of ``dim``; NaN stays NaN."""
        q, p = self._grid(dim)
        x = np.asarray(scores, dtype=np.float64)
        # Equal quantiles (a flat stretch) are merged into one point at the middle of their percentiles, so the
        # map stays a function and is monotone.
        values, start, counts = np.unique(q, return_index=True, return_counts=True)
        mid = (p[start] + p[start + counts - 1]) / 2
        if values.size == 1:
            out = np.where(x < values[0], 0.0, np.where(x > values[0], 100.0, mid[0]))
        else:
            out = np.interp(x, values, mid, left=0.0, right=100.0)
        return np.where(np.isnan(x), np.nan, out)

    def value(self, dim: str, percentile: float) -> float:
        """The score at ``percentile`` (0-100) of the reference of ``dim``.

        Raises:
            ValueError: ``percentile`` is outside 0-100.
        """
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile {percentile:g} is outside 0-100")
        q, p = self._grid(dim)
        return float(np.interp(percentile, p, q))

    def summary(self, points: tuple[float, ...] = (10.0, 50.0, 90.0)) -> dict[str, dict[str, float]]:
        """``{dimension: {"p10": ..., "p50": ..., "p90": ...}}``, what ``agiqa models`` shows."""
        return {d: {f"p{p:g}": self.value(d, p) for p in points} for d in self.quantiles}


def card_reference(card: Any) -> Reference | None:
    """The reference of a ``ModelCard`` (None when it has none)."""
    value = getattr(card, "reference", None)
    if value is None:
        return None
    return Reference.from_card_value(value, card.source or card.name)


def require_reference(card: Any, name: str) -> Reference:
    """The reference of a card, or a ``NoReferenceError`` that says how to get one.

    Args:
        card: The model's card (None for a model without one).
        name: The model's name, for the message.
    """
    reference = card_reference(card) if card is not None else None
    if reference is None:
        raise NoReferenceError(
            f"model {name!r} has no reference distribution in its card, so its scores have no percentiles; "
            "models trained with `agiqa train` get one (the quantiles of their predictions on their training "
            "images), or add one with agiqa.api.Reference.from_scores(...).to_card_value() under `reference:`"
        )
    return reference
