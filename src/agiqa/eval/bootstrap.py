"""Percentile-bootstrap confidence intervals of any functional metric, resampling whole groups (prompts)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from agiqa.eval.values import MIN_SAMPLES, MetricError, MetricWarning, groups_array, to_numpy


@dataclass(frozen=True)
class ConfidenceInterval:
    """A metric with its percentile-bootstrap confidence interval.

    Attributes:
        value: The metric on the full data.
        low: Lower bound.
        high: Upper bound.
        confidence: Coverage (0.95 for a 95% interval).
        n_resamples: Resamples drawn.
        n_failed: Resamples whose metric was NaN (e.g. a constant resample); they are left out of the bounds.
        unit: ``groups`` when whole groups were resampled, else ``rows``.
    """

    value: float
    low: float
    high: float
    confidence: float
    n_resamples: int
    n_failed: int
    unit: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain dict for JSON."""
        return dict(self.__dict__)


def bootstrap_ci(
    metric: Callable[..., float],
    *arrays: Any,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    pass_groups: bool = False,
) -> ConfidenceInterval:
    """Percentile-bootstrap confidence interval of ``metric(*arrays)``.

    With ``groups`` the bootstrap resamples whole groups (prompts) with replacement, because images of one
    prompt are not independent; without them it resamples rows. ``scipy.stats.bootstrap`` is not used
    because it cannot resample clusters nor leave out degenerate resamples. Rows where any array is not
    finite are dropped first. Resamples where the metric is NaN are counted in ``n_failed`` and left out; if
    more than half fail, the bounds are NaN with a warning.

    Args:
        metric: A functional metric of ``agiqa.eval.metrics`` such as ``srcc`` or
            ``functools.partial(plcc, mapping="logistic5")``.
        *arrays: The metric's row-aligned inputs: ``preds, target``, or ``score_a, score_b, label`` for
            ``preference_accuracy``.
        groups: Group id (prompt) of each row, to resample groups instead of rows.
        n_resamples: Number of resamples.
        confidence: Coverage of the interval.
        seed: Seed of the ``numpy.random.Generator``.
        pass_groups: Call ``metric(*arrays, groups)`` (for the pairwise accuracies); a group drawn twice is
            passed as two groups.

    Example:
        >>> from agiqa.eval.metrics import srcc
        >>> ci = bootstrap_ci(srcc, [1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], n_resamples=200)
        >>> ci.low <= ci.value <= ci.high
        True
    """
    if not 0 < confidence < 1:
        raise MetricError(f"`confidence` must be between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise MetricError(f"`n_resamples` must be at least 1, got {n_resamples}")
    if not arrays:
        raise MetricError("bootstrap_ci needs the metric's input arrays")
    cols = [to_numpy(a, f"arrays[{k}]") for k, a in enumerate(arrays)]
    if len({c.size for c in cols}) > 1:
        raise MetricError(f"bootstrap_ci inputs differ in length: {[c.size for c in cols]}")
    keep = np.logical_and.reduce([np.isfinite(c) for c in cols])
    if not keep.all():
        warnings.warn(f"dropped {int((~keep).sum())} rows with NaN or inf", MetricWarning, stacklevel=2)
    cols = [c[keep] for c in cols]
    g = None if groups is None else groups_array(groups, keep.size)[keep]
    if pass_groups and g is None:
        raise MetricError("`pass_groups=True` needs `groups`")
    unit = "rows" if g is None else "groups"
    n = cols[0].size
    if n < MIN_SAMPLES:
        warnings.warn(f"bootstrap needs at least {MIN_SAMPLES} rows, got {n}", MetricWarning, stacklevel=2)
        return ConfidenceInterval(float("nan"), float("nan"), float("nan"), confidence, 0, 0, unit)

    def call(idx: np.ndarray, labels: np.ndarray | None) -> float:
        picked = [c[idx] for c in cols]
        return float(metric(*picked, labels) if pass_groups else metric(*picked))

    rng = np.random.default_rng(seed)
    draws: list[tuple[np.ndarray, np.ndarray | None]] = []
    if g is not None:
        codes = pd.factorize(g)[0]
        members = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]
        for _ in range(n_resamples):
            picked = [members[k] for k in rng.integers(0, len(members), len(members))]
            # A group drawn twice becomes two groups (no pairs across the copies).
            labels = np.repeat(np.arange(len(picked)), [m.size for m in picked])
            draws.append((np.concatenate(picked), labels))
    else:
        draws = [(rng.integers(0, n, n), None) for _ in range(n_resamples)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        full = call(np.arange(n), g)
        values = np.array([call(idx, labels) for idx, labels in draws])
    ok = values[np.isfinite(values)]
    n_failed = int(values.size - ok.size)
    if ok.size < max(1, values.size / 2):
        warnings.warn(
            f"bootstrap: {n_failed} of {n_resamples} resamples gave no value; interval is undefined",
            MetricWarning,
            stacklevel=2,
        )
        return ConfidenceInterval(full, float("nan"), float("nan"), confidence, n_resamples, n_failed, unit)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ok, [alpha, 1 - alpha])
    return ConfidenceInterval(full, float(low), float(high), confidence, n_resamples, n_failed, unit)
