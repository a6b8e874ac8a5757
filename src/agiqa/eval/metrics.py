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

Logistic mapping (PLCC / RMSE "after mapping"): VQEG's monotonic 5-parameter logistic
``b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5`` or the 4-parameter form
``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` is fitted from ``preds`` to ``target`` with
``scipy.optimize.curve_fit``. See :func:`fit_logistic` for the initial values, bounds and the fallback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

MappingKind = Literal["logistic5", "logistic4"]
MIN_SAMPLES = 3
MAX_STEEPNESS = 50.0  # logistic slope bound, per standard deviation of the predictions
MAX_FIT_EVALUATIONS = 1000


class MetricError(ValueError):
    """Inputs that no metric can be computed from (wrong lengths, shapes or label values)."""


class MetricWarning(UserWarning):
    """A metric dropped rows or could not be computed; the message says which and why."""


class MetricValue(float):
    """A metric's value: a ``float`` that also says how many samples it used and, when NaN, why.

    Attributes:
        n: Number of samples (or pairs) the value was computed from.
        n_dropped: Number of rows dropped because an input was not finite.
        reason: Why the value is NaN (None when it is a number).
    """

    n: int
    n_dropped: int
    reason: str | None

    def __new__(cls, value: float, n: int = 0, n_dropped: int = 0, reason: str | None = None) -> MetricValue:
        obj = super().__new__(cls, value)
        obj.n, obj.n_dropped, obj.reason = n, n_dropped, reason
        return obj

    @classmethod
    def undefined(cls, reason: str, n: int = 0, n_dropped: int = 0) -> MetricValue:
        """A NaN value with its reason, announced by a :class:`MetricWarning`."""
        warnings.warn(reason, MetricWarning, stacklevel=3)
        return cls(float("nan"), n=n, n_dropped=n_dropped, reason=reason)

    def __repr__(self) -> str:
        extra = f", reason={self.reason!r}" if self.reason else ""
        return f"MetricValue({float(self)!r}, n={self.n}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (MetricValue, (float(self), self.n, self.n_dropped, self.reason))


# ----------------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------------


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Convert a list, array, pandas Series or torch tensor to a 1-D float64 array.

    Args:
        x: The values.
        name: Argument name used in error messages.

    Raises:
        MetricError: When ``x`` is not one-dimensional (a trailing or leading size-1 axis is squeezed).
    """
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MetricError(f"`{name}` must hold numbers: {err}") from None
    if arr.ndim > 1:
        arr = arr.squeeze()
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise MetricError(f"`{name}` must be one-dimensional, got shape {np.shape(x)}")
    return arr


@dataclass(frozen=True)
class _Checked:
    preds: np.ndarray
    target: np.ndarray
    n_dropped: int
    keep: np.ndarray


def _check(preds: Any, target: Any, names: tuple[str, str] = ("preds", "target")) -> _Checked:
    """Convert, check lengths and drop non-finite rows (with a warning giving the count)."""
    p, t = to_numpy(preds, names[0]), to_numpy(target, names[1])
    if p.shape != t.shape:
        raise MetricError(
            f"`{names[0]}` has {p.size} values but `{names[1]}` has {t.size}; they must be paired one to one"
        )
    keep = np.isfinite(p) & np.isfinite(t)
    n_dropped = int(p.size - keep.sum())
    if n_dropped:
        warnings.warn(
            f"dropped {n_dropped} of {p.size} rows where `{names[0]}` or `{names[1]}` is NaN or infinite",
            MetricWarning,
            stacklevel=3,
        )
    return _Checked(p[keep], t[keep], n_dropped, keep)


def _degenerate(c: _Checked, names: tuple[str, str] = ("preds", "target")) -> str | None:
    """Why a correlation of these inputs is undefined, or None when it is defined."""
    n = c.preds.size
    if n < MIN_SAMPLES:
        return f"needs at least {MIN_SAMPLES} finite samples, got {n}"
    for arr, name in zip((c.preds, c.target), names, strict=True):
        if np.ptp(arr) == 0:
            return f"`{name}` is constant ({arr[0]:g} for all {n} samples): correlation is undefined"
    return None


# ----------------------------------------------------------------------------------------------------------
# Logistic mapping
# ----------------------------------------------------------------------------------------------------------


def _logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(np.clip(b2 * (x - b3), -500, 500)))) + b4 * x + b5


def _logistic5_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(np.clip(b2 * (x - b3), -500, 500)))
    d = s * (1.0 - s)
    return np.stack([0.5 - s, b1 * d * (x - b3), -b1 * d * b2, x, np.ones_like(x)], axis=1)


def _logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    return (b1 - b2) / (1.0 + np.exp(np.clip(-(x - b3) / (abs(b4) + 1e-12), -500, 500))) + b2


@dataclass(frozen=True)
class LogisticMapping:
    """A fitted monotonic mapping from predicted scores to the MOS scale.

    Attributes:
        kind: ``logistic5``, ``logistic4``, or ``linear`` when the logistic fit failed.
        params: Fitted parameters, for standardised inputs ``(x - x_mean) / x_scale``.
        x_mean: Mean of the predictions used for standardisation.
        x_scale: Standard deviation of the predictions used for standardisation.
        direction: +1 when predictions increase with the target (by SRCC), else -1.
        fallback_reason: Why the logistic fit was replaced by a linear fit (None when it was not).
    """

    kind: str
    params: tuple[float, ...]
    x_mean: float
    x_scale: float
    direction: float
    fallback_reason: str | None = None

    def __call__(self, x: Any) -> np.ndarray:
        """Map predictions ``x`` to the target scale."""
        z = self.direction * (to_numpy(x, "x") - self.x_mean) / self.x_scale
        if self.kind == "logistic5":
            return _logistic5(z, *self.params)
        if self.kind == "logistic4":
            return _logistic4(z, *self.params)
        return self.params[0] * z + self.params[1]


def fit_logistic(preds: Any, target: Any, kind: MappingKind = "logistic5") -> LogisticMapping:
    """Fit VQEG's monotonic logistic mapping from ``preds`` to ``target`` (finite values only).

    Choices (the VQEG report leaves them open):

    * ``preds`` are standardised (z-scores) and oriented by the sign of their SRCC with ``target`` before the
      fit, so that the initial values below suit any score scale and direction.
    * Initial values: 5-param ``b1 = ptp(target), b2 = 1, b3 = 0, b4 = 0, b5 = mean(target)``;
      4-param ``b1 = max(target), b2 = min(target), b3 = 0, b4 = 1`` (cf. pyiqa / DBCNN).
    * Monotonicity is enforced with bounds (5-param: ``b1, b2, b4 >= 0``; 4-param: a fit with ``b1 < b2`` is
      rejected), so the mapping cannot reorder predictions. The centre ``b3`` stays within the range of the
      predictions and the steepness is at most ``MAX_STEEPNESS`` per standard deviation: without these bounds
      small samples let the fit run towards a step function for many seconds.
    * Fallback: when ``curve_fit`` fails (no convergence, too few samples for the parameters, non-finite
      result), a least-squares line is used instead and ``fallback_reason`` says why.

    Args:
        preds: Predicted scores.
        target: MOS.
        kind: ``logistic5`` (default) or ``logistic4``.

    Raises:
        MetricError: For mismatched lengths, fewer than 3 finite samples or constant inputs.
    """
    if kind not in ("logistic5", "logistic4"):
        raise MetricError(f"`kind` must be 'logistic5' or 'logistic4', got {kind!r}")
    c = _check(preds, target)
    reason = _degenerate(c)
    if reason:
        raise MetricError(f"cannot fit a logistic mapping: {reason}")
    x, y = c.preds, c.target
    direction = 1.0 if stats.spearmanr(x, y).statistic >= 0 else -1.0
    x_mean, x_scale = float(x.mean()), float(x.std())
    z = direction * (x - x_mean) / x_scale
    lo, hi = float(z.min()), float(z.max())
    if kind == "logistic5":
        func: Callable[..., np.ndarray] = _logistic5
        jac: Callable[..., np.ndarray] | str = _logistic5_jac
        p0 = [np.ptp(y), 1.0, 0.0, 0.0, y.mean()]
        bounds = ([0.0, 0.0, lo, 0.0, -np.inf], [np.inf, MAX_STEEPNESS, hi, np.inf, np.inf])
    else:
        func, jac, p0 = _logistic4, "2-point", [y.max(), y.min(), 0.0, 1.0]
        bounds = ([-np.inf, -np.inf, lo, 1.0 / MAX_STEEPNESS], [np.inf, np.inf, hi, np.inf])
    failure: str | None = None
    if z.size <= len(p0):
        failure = f"{z.size} samples cannot determine {len(p0)} parameters"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optimize.OptimizeWarning)  # covariance: unused here
                params, _ = optimize.curve_fit(func, z, y, p0=p0, bounds=bounds, jac=jac, max_nfev=MAX_FIT_EVALUATIONS)
            if not np.all(np.isfinite(func(z, *params))):
                failure = "the fitted curve is not finite"
            elif kind == "logistic4" and params[0] < params[1]:
                failure = "the fitted 4-parameter curve is decreasing (b1 < b2)"
        except (RuntimeError, ValueError) as err:
            failure = f"curve_fit failed: {err}"
    if failure is None:
        return LogisticMapping(kind, tuple(map(float, params)), x_mean, x_scale, direction)
    slope, intercept = np.polyfit(z, y, 1)
    return LogisticMapping("linear", (float(slope), float(intercept)), x_mean, x_scale, direction, failure)


# ----------------------------------------------------------------------------------------------------------
# Correlation and error metrics: private compute helpers
# ----------------------------------------------------------------------------------------------------------


def _compute_srcc(c: _Checked) -> MetricValue:
    reason = _degenerate(c)
    if reason:
        return MetricValue.undefined(f"SRCC {reason}", c.preds.size, c.n_dropped)
    return MetricValue(stats.spearmanr(c.preds, c.target).statistic, c.preds.size, c.n_dropped)


def _compute_krcc(c: _Checked) -> MetricValue:
    reason = _degenerate(c)
    if reason:
        return MetricValue.undefined(f"KRCC {reason}", c.preds.size, c.n_dropped)
    return MetricValue(stats.kendalltau(c.preds, c.target).statistic, c.preds.size, c.n_dropped)


def _mapped(c: _Checked, mapping: MappingKind | None) -> np.ndarray:
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


def _compute_plcc(c: _Checked, mapping: MappingKind | None) -> MetricValue:
    reason = _degenerate(c)
    if reason:
        return MetricValue.undefined(f"PLCC {reason}", c.preds.size, c.n_dropped)
    mapped = _mapped(c, mapping)
    if np.ptp(mapped) == 0:
        return MetricValue.undefined("PLCC: the logistic mapping is flat", c.preds.size, c.n_dropped)
    return MetricValue(stats.pearsonr(mapped, c.target).statistic, c.preds.size, c.n_dropped)


def _compute_rmse(c: _Checked, mapping: MappingKind | None) -> MetricValue:
    n = c.preds.size
    if n < MIN_SAMPLES:
        return MetricValue.undefined(f"RMSE needs at least {MIN_SAMPLES} finite samples, got {n}", n, c.n_dropped)
    if mapping is not None:
        reason = _degenerate(c)
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
    return _compute_srcc(_check(preds, target))


def krcc(preds: Any, target: Any) -> MetricValue:
    """Kendall rank correlation, tau-b (``scipy.stats.kendalltau``).

    Example:
        >>> round(krcc([1, 2, 3, 4], [1, 3, 2, 4]), 3)
        0.667
    """
    return _compute_krcc(_check(preds, target))


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
    return _compute_plcc(_check(preds, target), mapping)


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
    return _compute_rmse(_check(preds, target), mapping)


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


def _groups_array(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    if groups is None:
        return np.full(n, "", dtype=object)
    if hasattr(groups, "detach"):
        groups = groups.detach().cpu().numpy()
    g = np.asarray(list(groups), dtype=object)
    if g.shape != (n,):
        raise MetricError(f"`{name}` has {g.size} values but there are {n} scores; give one group id per score")
    return g


def _pairs_from_groups(preds: Any, target: Any, groups: Any) -> _Pairs:
    """All same-group pairs ``i < j`` with the MOS order as label (1.0 if ``target[i] > target[j]``)."""
    c = _check(preds, target)
    g = _groups_array(groups, c.keep.size)[c.keep]
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
    c = _check(score_a, score_b, names=("score_a", "score_b"))
    lab = to_numpy(label, "label")
    if lab.size != c.keep.size:
        raise MetricError(f"`label` has {lab.size} values but there are {c.keep.size} pairs")
    bad = np.flatnonzero(~np.isin(lab, (0.0, 0.5, 1.0)))
    if bad.size:
        raise MetricError(
            f"`label` must be 1 (a preferred), 0 (b preferred) or 0.5 (tie); row {bad[0]} is {lab[bad[0]]!r}"
            f" ({bad.size} bad rows)"
        )
    g = _groups_array(groups, c.keep.size)
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
        return _compute_srcc(_check(preds, target))


class KRCC(Metric):
    """Accumulating :func:`krcc`."""

    name, higher_is_better = "krcc", True

    def _compute_from(self, preds: np.ndarray, target: np.ndarray) -> MetricValue:
        return _compute_krcc(_check(preds, target))


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
        return _compute_plcc(_check(preds, target), self.mapping)


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
        return _compute_rmse(_check(preds, target), self.mapping)


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
        metric: A functional metric such as :func:`srcc` or ``functools.partial(plcc, mapping="logistic5")``.
        *arrays: The metric's row-aligned inputs: ``preds, target``, or ``score_a, score_b, label`` for
            :func:`preference_accuracy`.
        groups: Group id (prompt) of each row, to resample groups instead of rows.
        n_resamples: Number of resamples.
        confidence: Coverage of the interval.
        seed: Seed of the ``numpy.random.Generator``.
        pass_groups: Call ``metric(*arrays, groups)`` (for the pairwise accuracies); a group drawn twice is
            passed as two groups.

    Example:
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
    g = None if groups is None else _groups_array(groups, keep.size)[keep]
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


__all__ = [
    "KRCC",
    "PLCC",
    "RMSE",
    "SRCC",
    "ConfidenceInterval",
    "LogisticMapping",
    "Metric",
    "MetricError",
    "MetricValue",
    "MetricWarning",
    "PairwiseAccuracy",
    "PreferenceAccuracy",
    "bootstrap_ci",
    "fit_logistic",
    "krcc",
    "pairwise_accuracy",
    "pairwise_accuracy_per_group",
    "plcc",
    "preference_accuracy",
    "preference_accuracy_per_group",
    "rmse",
    "srcc",
    "to_numpy",
]
