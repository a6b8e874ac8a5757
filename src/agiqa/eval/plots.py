"""Scatter plots of predicted score against MOS with the fitted logistic mapping.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so importing or calling this module
never changes the user's matplotlib backend.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agiqa.eval.logistic import MappingKind, fit_logistic
from agiqa.eval.metrics import plcc, srcc
from agiqa.eval.values import MetricError, MetricWarning, to_numpy


def scatter_plot(
    preds: Any,
    target: Any,
    path: str | Path,
    title: str = "",
    mapping: MappingKind = "logistic5",
    xlabel: str = "predicted score",
    ylabel: str = "MOS",
) -> Path:
    """Save a PNG of ``target`` against ``preds`` with the fitted logistic curve and SRCC/PLCC in the legend.

    Non-finite points are left out. When the curve cannot be fitted (constant input, fewer than 3 points) the
    scatter is drawn without it and the title says why.

    Returns:
        The path written (parents created).
    """
    p, t = to_numpy(preds, "preds"), to_numpy(target, "target")
    if p.shape != t.shape:
        raise MetricError(f"`preds` has {p.size} values but `target` has {t.size}")
    keep = np.isfinite(p) & np.isfinite(t)
    p, t = p[keep], t[keep]
    fig = Figure(figsize=(5, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(p, t, s=6, alpha=0.45, edgecolors="none", label=f"{p.size} images")
    note = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        try:
            fitted = fit_logistic(p, t, mapping)
            grid = np.linspace(p.min(), p.max(), 200)
            label = f"{fitted.kind} fit: SRCC {srcc(p, t):.3f}, PLCC {plcc(p, t, mapping):.3f}"
            ax.plot(grid, fitted(grid), color="C3", lw=2, label=label)
            if fitted.fallback_reason:
                note = " (logistic fit failed, linear shown)"
        except MetricError as err:
            note = f" (no fit: {err})"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title((title + note).strip(), fontsize=9)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


__all__ = ["scatter_plot"]
