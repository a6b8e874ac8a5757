"""IQA metrics in functional and accumulate-then-compute forms, built on one set of private helpers.

Functional forms (``srcc(preds, target)``) and classes (``SRCC().update(...).compute()``) share the same
``_check`` / ``_compute_*`` helpers, so both give identical values. Inputs may be numpy arrays, lists, pandas
Series or torch tensors.

Degenerate input policy (the same for every metric):

* ``preds`` and ``target`` of different lengths: :class:`MetricError` naming both arguments.
* Non-finite values (NaN, inf) in either input: those rows are dropped, a :class:`MetricWarning` gives the
  count and the value records it in ``n_dropped``.
* Fewer than 3 usable samples, or constant ``preds`` / ``target``: the value is NaN, a :class:`MetricWarning`
  says why and the value carries the same text in ``reason``. NaN is never returned without a reason.

Every metric returns a :class:`MetricValue`: a ``float`` that also carries ``n``, ``n_dropped`` and
``reason``.

PLCC and RMSE "after mapping" fit VQEG's logistic (``agiqa.eval.logistic``); bootstrap intervals of any of
these functions are in ``agiqa.eval.bootstrap``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from agiqa.eval.logistic import MappingKind, fit_logistic
from agiqa.eval.values import (
    MIN_SAMPLES,
    Checked,
    MetricError,
    MetricValue,
    MetricWarning,
    check,
    degenerate,
    groups_array,
    to_numpy,
)

# ----------------------------------------------------------------------------------------------------------
# Correlation and error metrics: private compute helpers
# ----------------------------------------------------------------------------------------------------------


def _compute_srcc(c: Checked) -> MetricValue:
    reason = degenerate(c)
    if reason:
        return MetricValue.undefined(f"SRCC {reason}", c.preds.size, c.n_dropped)
    return MetricValue(stats.spearmanr(c.preds, c.target).statistic, c.preds.size, c.n_dropped)


def _compute_krcc(c: Checked) -> MetricValue:
    reason = degenerate(c)
    if reason:
        return MetricValue.undefined(f"KRCC {reason}", c.preds.size, c.n_dropped)
    return MetricValue(stats.kendalltau(c.preds, c.target).statistic, c.preds.size, c.n_dropped)


def _mapped(c: Checked, mapping: MappingKind | None) -> np.ndarray:
    if mapping is None:
        return c.preds
    fitted = fit_logistic(c.preds, c.target, mapping)
    if fitted.fallback_reason:
        warnings.warn(
            f"logistic mapping replaced by a linear fit: {fitted.fallback_reason}",
            MetricWarning,
            stacklevel=4,
        )
    return fitted(c.preds)


def _compute_plcc(c: Checked, mapping: MappingKind | None) -> MetricValue:
    reason = degenerate(c)
    if reason:
        return MetricValue.undefined(f"PLCC {reason}", c.preds.size, c.n_dropped)
    mapped = _mapped(c, mapping)
    if np.ptp(mapped) == 0:
        return MetricValue.undefined("PLCC: the logistic mapping is flat", c.preds.size, c.n_dropped)
    return MetricValue(stats.pearsonr(mapped, c.target).statistic, c.preds.size, c.n_dropped)


def _compute_rmse(c: Checked, mapping: MappingKind | None) -> MetricValue:
    n = c.preds.size
    if n < MIN_SAMPLES:
        return MetricValue.undefined(f"RMSE needs at least {MIN_SAMPLES} finite samples, got {n}", n, c.n_dropped)
    if mapping is not None:
        reason = degenerate(c)
        if reason:
            return MetricValue.undefined(f"RMSE after logistic mapping: {reason}", n, c.n_dropped)
    err = _mapped(c, mapping) - c.target
    return MetricValue(float(np.sqrt(np.mean(err**2))), n, c.n_dropped)


# ----------------------------------------------------------------------------------------------------------
# Functional forms
# ----------------------------------------------------------------------------------------------------------


def srcc(preds: Any, target: Any) -> MetricValue:
    """Spearman rank correlation (``scipy.stats.spearmanr``; ties get average ranks).

    Example:
        >>> round(srcc([1, 2, 3, 4], [1, 3, 2, 4]), 3)
        0.8
    """
    return _compute_srcc(check(preds, target))


def krcc(preds: Any, target: Any) -> MetricValue:
    """Kendall rank correlation, tau-b (``scipy.stats.kendalltau``).

    Example:
        >>> round(krcc([1, 2, 3, 4], [1, 3, 2, 4]), 3)
        0.667
    """
    return _compute_krcc(check(preds, target))


def plcc(preds: Any, target: Any, mapping: MappingKind | None = None) -> MetricValue:
    """Pearson linear correlation, raw (``mapping=None``) or after a logistic mapping of ``preds``.

    Args:
        preds: Predicted scores.
        target: MOS.
        mapping: None for raw PLCC, ``logistic5`` or ``logistic4`` for PLCC after :func:`fit_logistic`.

    Example:
        >>> round(plcc([1, 2, 3, 4], [2, 4, 6, 8]), 3)
        1.0
    """
    return _compute_plcc(check(preds, target), mapping)


def rmse(preds: Any, target: Any, mapping: MappingKind | None = "logistic5") -> MetricValue:
    """Root mean squared error of the (by default logistic-mapped) predictions against the MOS.

    Args:
        preds: Predicted scores.
        target: MOS.
        mapping: ``logistic5`` (default, as IQA papers report it), ``logistic4``, or None for raw predictions.

    Example:
        >>> round(rmse([1, 2, 3], [1, 2, 5], mapping=None), 3)
        1.155
    """
    return _compute_rmse(check(preds, target), mapping)


# ----------------------------------------------------------------------------------------------------------
# Pairwise preference accuracy
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    score_a: np.ndarray
    score_b: np.ndarray
    label: np.ndarray
    groups: np.ndarray
    n_dropped: int = 0


def _pairs_from_groups(preds: Any, target: Any, groups: Any) -> _Pairs:
    """All same-group pairs ``i < j`` with the MOS order as label (1.0 if ``target[i] > target[j]``)."""
    c = check(preds, target)
    g = groups_array(groups, c.keep.size)[c.keep]
    codes = pd.factorize(g)[0]  # integer codes: sorting them is much faster than sorting strings
    order = np.argsort(codes, kind="stable")
    sorted_g = codes[order]
    # Position i of the sorted array pairs with every later position of its group: i+1 .. group_end-1.
    starts = np.flatnonzero(np.r_[True, sorted_g[1:] != sorted_g[:-1]])
    ends = np.r_[starts[1:], sorted_g.size]
    group_end = np.repeat(ends, ends - starts)
    later = group_end - np.arange(sorted_g.size) - 1
    first = np.repeat(np.arange(sorted_g.size), later)
    offset = np.arange(first.size) - np.repeat(np.cumsum(later) - later, later)
    a, b = order[first], order[first + 1 + offset]
    label = np.where(c.target[a] > c.target[b], 1.0, np.where(c.target[a] < c.target[b], 0.0, 0.5))
    return _Pairs(c.preds[a], c.preds[b], label, g[a], c.n_dropped)


def _explicit_pairs(score_a: Any, score_b: Any, label: Any, groups: Any = None) -> _Pairs:
    c = check(score_a, score_b, names=("score_a", "score_b"))
    lab = to_numpy(label, "label")
    if lab.size != c.keep.size:
        raise MetricError(f"`label` has {lab.size} values but there are {c.keep.size} pairs")
    bad = np.flatnonzero(~np.isin(lab, (0.0, 0.5, 1.0)))
    if bad.size:
        raise MetricError(
            f"`label` must be 1 (a preferred), 0 (b preferred) or 0.5 (tie); row {bad[0]} is {lab[bad[0]]!r}"
            f" ({bad.size} bad rows)"
        )
    g = groups_array(groups, c.keep.size)
    return _Pairs(c.preds, c.target, lab[c.keep], g[c.keep], c.n_dropped)


def _pair_credit(p: _Pairs, tie_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Credit per untied pair (1 right, 0.5 predicted tie, 0 wrong) and the group of each of those pairs."""
    untied = p.label != 0.5
    diff = (p.score_a - p.score_b)[untied]
    want_a = p.label[untied] == 1.0
    credit = np.where(np.abs(diff) <= tie_tol, 0.5, ((diff > 0) == want_a).astype(float))
    return credit, p.groups[untied]


def _compute_pair_accuracy(p: _Pairs, tie_tol: float) -> MetricValue:
    credit, _ = _pair_credit(p, tie_tol)
    if credit.size == 0:
        n_ties = int((p.label == 0.5).sum())
        return MetricValue.undefined(
            f"pairwise accuracy has no untied pairs to score ({n_ties} tied pairs left out)", 0, p.n_dropped
        )
    return MetricValue(float(credit.mean()), credit.size, p.n_dropped)


def _compute_pair_accuracy_per_group(p: _Pairs, tie_tol: float) -> dict[str, MetricValue]:
    credit, groups = _pair_credit(p, tie_tol)
    out: dict[str, MetricValue] = {}
    empty = []
    for g in dict.fromkeys(p.groups):
        mine, key = credit[groups == g], str(g)
        if mine.size:
            out[key] = MetricValue(float(mine.mean()), mine.size)
        else:
            out[key] = MetricValue(float("nan"), 0, reason=f"group {key!r} has no untied pairs")
            empty.append(key)
    if empty:
        shown = ", ".join(map(repr, empty[:5])) + (" ..." if len(empty) > 5 else "")
        warnings.warn(f"{len(empty)} group(s) have no untied pairs (NaN): {shown}", MetricWarning, stacklevel=3)
    return out


def pairwise_accuracy(preds: Any, target: Any, groups: Any, tie_tol: float = 0.0) -> MetricValue:
    """Share of same-group pairs whose predicted order matches the MOS order.

    Every pair of samples with the same group id (prompt) is scored; pairs with equal MOS are left out and a
    predicted tie (``|pred_a - pred_b| <= tie_tol``) earns half credit. Pairs are pooled over groups (micro
    average); see :func:`pairwise_accuracy_per_group` for each group.

    Args:
        preds: Predicted scores.
        target: MOS (higher is better).
        groups: Group id (prompt) of each sample.
        tie_tol: Largest score difference counted as a predicted tie.

    Example:
        >>> float(pairwise_accuracy([3, 2, 1, 1], [3, 2, 1, 5], ["a", "a", "a", "b"]))
        1.0
    """
    return _compute_pair_accuracy(_pairs_from_groups(preds, target, groups), tie_tol)


def pairwise_accuracy_per_group(preds: Any, target: Any, groups: Any, tie_tol: float = 0.0) -> dict[str, MetricValue]:
    """:func:`pairwise_accuracy` within each group; groups without an untied pair give NaN with a reason."""
    return _compute_pair_accuracy_per_group(_pairs_from_groups(preds, target, groups), tie_tol)


def preference_accuracy(
    score_a: Any, score_b: Any, label: Any, groups: Any = None, tie_tol: float = 0.0
) -> MetricValue:
    """Accuracy over explicit preference pairs (Pick-a-Pic, ImageReward, HPD style).

    Args:
        score_a: Predicted score of the first image of each pair.
        score_b: Predicted score of the second image.
        label: 1 when people preferred ``a``, 0 when they preferred ``b``, 0.5 for a tie (left out).
        groups: Optional group id (prompt) of each pair; only used by the per-group form.
        tie_tol: Largest score difference counted as a predicted tie (half credit).

    Example:
        >>> float(preference_accuracy([0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [1, 1, 0]))
        0.5
    """
    return _compute_pair_accuracy(_explicit_pairs(score_a, score_b, label, groups), tie_tol)


def preference_accuracy_per_group(
    score_a: Any, score_b: Any, label: Any, groups: Any, tie_tol: float = 0.0
) -> dict[str, MetricValue]:
    """:func:`preference_accuracy` within each group (prompt)."""
    return _compute_pair_accuracy_per_group(_explicit_pairs(score_a, score_b, label, groups), tie_tol)


# ----------------------------------------------------------------------------------------------------------
# Stateful forms: accumulate with update(), then compute()
# ----------------------------------------------------------------------------------------------------------


class Metric:
    """Base of the accumulating metrics: ``update`` stores inputs, ``compute`` runs the functional helper.

    Rank correlations do not decompose over batches, so every input is kept until ``compute`` (as torchmetrics
    does for Spearman). Subclasses set ``name``, ``higher_is_better`` and ``_inputs`` (the ``update``
    argument names) and implement ``_compute_from``.
    """

    name: str = ""
    higher_is_better: bool = True
    _inputs: tuple[str, ...] = ("preds", "target")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._state: dict[str, list[Any]] = {k: [] for k in self._inputs}

    def update(self, *args: Any) -> Metric:
        """Add a batch; arguments as in the functional form. Returns ``self`` for chaining."""
        if len(args) != len(self._inputs):
            raise MetricError(f"{type(self).__name__}.update takes ({', '.join(self._inputs)})")
        sizes = {}
        for key, value in zip(self._inputs, args, strict=True):
            arr = np.asarray(list(value), dtype=object) if key == "groups" else to_numpy(value, key)
            sizes[key] = arr.size
            self._state[key].append(arr)
        if len(set(sizes.values())) > 1:
            for key in self._inputs:
                self._state[key].pop()
            raise MetricError(f"{type(self).__name__}.update got inputs of different lengths: {sizes}")
        return self

    def _gathered(self) -> list[np.ndarray]:
        return [
            np.concatenate(self._state[k]) if self._state[k] else np.zeros(0, dtype=object if k == "groups" else float)
            for k in self._inputs
        ]

    def compute(self) -> MetricValue:
        """The metric over every batch given to ``update`` since the last ``reset``."""
        return self._compute_from(*self._gathered())

    def _compute_from(self, *arrays: np.ndarray) -> MetricValue:
        raise NotImplementedError


class SRCC(Metric):
    """Accumulating :func:`srcc`."""

    name, higher_is_better = "srcc", True

    def _compute_from(self, preds: np.ndarray, target: np.ndarray) -> MetricValue:
        return _compute_srcc(check(preds, target))


class KRCC(Metric):
    """Accumulating :func:`krcc`."""

    name, higher_is_better = "krcc", True

    def _compute_from(self, preds: np.ndarray, target: np.ndarray) -> MetricValue:
        return _compute_krcc(check(preds, target))


class PLCC(Metric):
    """Accumulating :func:`plcc`.

    Args:
        mapping: None for raw PLCC, ``logistic5`` or ``logistic4`` for PLCC after the logistic mapping.
    """

    name, higher_is_better = "plcc", True

    def __init__(self, mapping: MappingKind | None = None) -> None:
        self.mapping = mapping
        super().__init__()

    def _compute_from(self, preds: np.ndarray, target: np.ndarray) -> MetricValue:
        return _compute_plcc(check(preds, target), self.mapping)


class RMSE(Metric):
    """Accumulating :func:`rmse`.

    Args:
        mapping: ``logistic5`` (default), ``logistic4`` or None.
    """

    name, higher_is_better = "rmse", False

    def __init__(self, mapping: MappingKind | None = "logistic5") -> None:
        self.mapping = mapping
        super().__init__()

    def _compute_from(self, preds: np.ndarray, target: np.ndarray) -> MetricValue:
        return _compute_rmse(check(preds, target), self.mapping)


class PairwiseAccuracy(Metric):
    """Accumulating :func:`pairwise_accuracy`; a group may be spread over several updates.

    Args:
        tie_tol: Largest score difference counted as a predicted tie.
    """

    name, higher_is_better = "pairwise_acc", True
    _inputs = ("preds", "target", "groups")

    def __init__(self, tie_tol: float = 0.0) -> None:
        self.tie_tol = tie_tol
        super().__init__()

    def _compute_from(self, preds: np.ndarray, target: np.ndarray, groups: np.ndarray) -> MetricValue:
        return _compute_pair_accuracy(_pairs_from_groups(preds, target, groups), self.tie_tol)

    def compute_per_group(self) -> dict[str, MetricValue]:
        """Accuracy within each group seen so far."""
        return _compute_pair_accuracy_per_group(_pairs_from_groups(*self._gathered()), self.tie_tol)


class PreferenceAccuracy(Metric):
    """Accumulating :func:`preference_accuracy` over explicit pairs.

    Args:
        tie_tol: Largest score difference counted as a predicted tie.
    """

    name, higher_is_better = "preference_acc", True
    _inputs = ("score_a", "score_b", "label", "groups")

    def __init__(self, tie_tol: float = 0.0) -> None:
        self.tie_tol = tie_tol
        super().__init__()

    def update(self, score_a: Any, score_b: Any, label: Any, groups: Any = None) -> Metric:  # type: ignore[override]
        """Add a batch of pairs; ``groups`` defaults to one unnamed group."""
        if groups is None:
            groups = [""] * to_numpy(score_a, "score_a").size
        return super().update(score_a, score_b, label, groups)

    def _compute_from(self, *arrays: np.ndarray) -> MetricValue:
        return _compute_pair_accuracy(_explicit_pairs(*arrays), self.tie_tol)

    def compute_per_group(self) -> dict[str, MetricValue]:
        """Accuracy within each group seen so far."""
        return _compute_pair_accuracy_per_group(_explicit_pairs(*self._gathered()), self.tie_tol)


# ----------------------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# ----------------------------------------------------------------------------------------------------------


__all__ = [
    "KRCC",
    "PLCC",
    "RMSE",
    "SRCC",
    "Metric",
    "MetricError",
    "MetricValue",
    "MetricWarning",
    "PairwiseAccuracy",
    "PreferenceAccuracy",
    "krcc",
    "pairwise_accuracy",
    "pairwise_accuracy_per_group",
    "plcc",
    "preference_accuracy",
    "preference_accuracy_per_group",
    "rmse",
    "srcc",
]
