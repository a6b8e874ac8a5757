"""Losses against mean opinion scores: L1 / MAE (MINT-IQA eq. 4, TSP-MGS eq. 8) and MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _check(pred: torch.Tensor, target: torch.Tensor, reduction: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target {tuple(target.shape)}; they must match")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}; use one of {REDUCTIONS}")


def l1_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``|pred - target|`` (MINT-IQA eq. 4; TSP-MGS eq. 8 calls it MAE)."""
    _check(pred, target, reduction)
    return F.l1_loss(pred, target, reduction=reduction)


mae_loss = l1_loss


def mse_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``(pred - target)^2``."""
    _check(pred, target, reduction)
    return F.mse_loss(pred, target, reduction=reduction)
