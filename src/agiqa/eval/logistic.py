"""VQEG's monotonic logistic mapping from predicted scores to the MOS scale (PLCC / RMSE "after mapping").

The 5-parameter logistic ``b1 * (0.5 - 1 / (1 + exp(b2 * (x - b3)))) + b4 * x + b5`` or the 4-parameter form
``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` is fitted from ``preds`` to ``target`` with
``scipy.optimize.curve_fit``. See :func:`fit_logistic` for the initial values, bounds and the fallback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import optimize, stats

from agiqa.eval.values import MetricError, check, degenerate, to_numpy

MappingKind = Literal["logistic5", "logistic4"]
MAX_STEEPNESS = 50.0  # logistic slope bound, per standard deviation of the predictions
MAX_FIT_EVALUATIONS = 1000


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
    c = check(preds, target)
    reason = degenerate(c)
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
