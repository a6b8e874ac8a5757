"""What every metric shares: its value type, its errors and warnings, and how it checks and cleans its inputs."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_SAMPLES = 3


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
class Checked:
    """Paired inputs after ``check``: the finite rows, how many were dropped and which were kept."""

    preds: np.ndarray
    target: np.ndarray
    n_dropped: int
    keep: np.ndarray


def check(preds: Any, target: Any, names: tuple[str, str] = ("preds", "target")) -> Checked:
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
    return Checked(p[keep], t[keep], n_dropped, keep)


def degenerate(c: Checked, names: tuple[str, str] = ("preds", "target")) -> str | None:
    """Why a correlation of these inputs is undefined, or None when it is defined."""
    n = c.preds.size
    if n < MIN_SAMPLES:
        return f"needs at least {MIN_SAMPLES} finite samples, got {n}"
    for arr, name in zip((c.preds, c.target), names, strict=True):
        if np.ptp(arr) == 0:
            return f"`{name}` is constant ({arr[0]:g} for all {n} samples): correlation is undefined"
    return None


def groups_array(groups: Any, n: int, name: str = "groups") -> np.ndarray:
    """One group id per score as an object array (all ``""`` when ``groups`` is None)."""
    if groups is None:
        return np.full(n, "", dtype=object)
    if hasattr(groups, "detach"):
        groups = groups.detach().cpu().numpy()
    g = np.asarray(list(groups), dtype=object)
    if g.shape != (n,):
        raise MetricError(f"`{name}` has {g.size} values but there are {n} scores; give one group id per score")
    return g
