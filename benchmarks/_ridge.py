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


def ridge(x: np.ndarray, y: np.ndarray, fit: Sequence[int], out: Sequence[int], alphas: Sequence[float]) -> np.ndarray:
    """Fit on rows ``fit`` (intercept unpenalised) once per penalty; predictions of rows ``out``, one row per alpha.

    One eigendecomposition of the fit rows' Gram matrix serves every penalty.
    """
    xf, mean = x[fit], y[fit].mean()
    eigval, eigvec = linalg.eigh(xf @ xf.T)
    projected = eigvec.T @ (y[fit] - mean)
    cross = x[out] @ xf.T
    return np.stack([cross @ (eigvec @ (projected / (eigval + a))) + mean for a in alphas])


def tuned_ridge(
    blocks: Sequence[np.ndarray],
    y: np.ndarray,
    train: Sequence[int],
    test: Sequence[int],
    validation: tuple[Sequence[int], Sequence[int]],
) -> np.ndarray:
    """Test predictions, the penalty picked on ``validation`` = (fit rows, validation rows) within ``train``."""
    fit, val = validation
    candidates = ridge(_design(blocks, fit), y, fit, val, ALPHAS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        scores = [float(np.nan_to_num(M.srcc(pred, y[val]))) for pred in candidates]
    alpha = ALPHAS[int(np.argmax(scores))]
    return ridge(_design(blocks, train), y, train, test, [alpha])[0]
