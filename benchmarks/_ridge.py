"""Ridge regression over frozen features, the baseline of ``run_protocol.py`` and the probe of ``lite_features.py``.

Features come as blocks (e.g. image statistics, prompt embedding). Columns are standardised with the statistics
of the rows the model is fitted on, and each block is scaled to unit total variance so that a wide block does
not drown a narrow one. The solve is in dual form (``n x n``), so thousands of columns cost no more than a few.
The penalty is chosen by SRCC on a grouped validation part of the training rows, then the model is refitted on
all training rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import linalg

from agiqa.eval import metrics as M

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def _design(blocks: Sequence[np.ndarray], fit: Sequence[int]) -> np.ndarray:
    parts = []
    for block in blocks:
        block = block.reshape(len(block), -1).astype(np.float64)
        mu, sd = block[fit].mean(0), block[fit].std(0) + 1e-6
        parts.append((block - mu) / sd / np.sqrt(block.shape[1]))
    return np.hstack(parts)


def ridge(x: np.ndarray, y: np.ndarray, fit: Sequence[int], out: Sequence[int], alpha: float) -> np.ndarray:
    """Fit on rows ``fit`` (intercept unpenalised), predict rows ``out``."""
    xf, mean = x[fit], y[fit].mean()
    coef = linalg.solve(xf @ xf.T + alpha * np.eye(len(fit)), y[fit] - mean, assume_a="pos")
    return x[out] @ (xf.T @ coef) + mean


def tuned_ridge(
    blocks: Sequence[np.ndarray],
    y: np.ndarray,
    train: Sequence[int],
    test: Sequence[int],
    validation: tuple[Sequence[int], Sequence[int]],
) -> tuple[np.ndarray, float]:
    """Test predictions and the penalty picked on ``validation`` = (fit rows, validation rows) within ``train``."""
    fit, val = validation
    x_val = _design(blocks, fit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        alpha = max(ALPHAS, key=lambda a: float(np.nan_to_num(M.srcc(ridge(x_val, y, fit, val, a), y[val]))))
    return ridge(_design(blocks, train), y, train, test, alpha), alpha
