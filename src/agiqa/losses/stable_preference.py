"""Stable Preference (004): anti-interference loss over weak views and the two-step weighting.

All losses are pure functions of scores. For a pair ``(I_a, I_b)`` the model scores the original images and
``k`` weak views of each (drawn by ``agiqa.train.augment``); ``views_a`` / ``views_b`` hold them as
``(B, 1 + k)``, the original first.

    eq. 5-6  ``L_ai = -log(e^inter / (e^inter + e^intra))`` with
             ``inter = min(S_better) - max(S_worse)`` over all views,
             ``intra = mean over the two images of (max - min of its views)``;
    eq. 7    step 1: ``L_1 = (L_pref + L_ai) / (1 + exp((dS - b) / tau))``, ``dS = S_better - S_worse``;
    eq. 8    step 2: ``L_2 = softmax_j(dS_j) (L_pref + L_ai)`` over the pairs of the mini-batch.

Choices where the paper is vague (see docs/methods.md):
* ``dS`` is taken on the original views; the gate of eq. 7 and the weights of eq. 8 are treated as constants
  (no gradient flows through them), as weights usually are.
* Step 1 averages the gated losses over the batch; step 2 sums them (the softmax weights already sum to 1).
* The better image is the one with ``label > 0.5``; for a tie (0.5) the one the model scores higher.
* Scores enter on the scale the preference loss uses (e.g. ``logit_scale * cos`` for PrefIQA), where the
  paper's ``b = 0.3`` and ``tau = 0.2`` were set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _orient(
    views_a: torch.Tensor, views_b: torch.Tensor, label: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    if views_a.shape != views_b.shape or views_a.dim() != 2:
        raise ValueError(f"views_a {tuple(views_a.shape)} and views_b {tuple(views_b.shape)} must both be (B, 1 + k)")
    label = torch.as_tensor(label, dtype=views_a.dtype, device=views_a.device).expand(views_a.shape[0])
    a_better = (label > 0.5) | ((label == 0.5) & (views_a[:, 0] >= views_b[:, 0]))
    better = torch.where(a_better[:, None], views_a, views_b)
    worse = torch.where(a_better[:, None], views_b, views_a)
    return better, worse


def score_gap(views_a: torch.Tensor, views_b: torch.Tensor, label: torch.Tensor | float) -> torch.Tensor:
    """``dS = S_better - S_worse`` on the original views (column 0), ``(B,)``."""
    better, worse = _orient(views_a, views_b, label)
    return better[:, 0] - worse[:, 0]


def anti_interference_loss(views_a: torch.Tensor, views_b: torch.Tensor, label: torch.Tensor | float) -> torch.Tensor:
    """Eq. 5-6 for each pair, ``(B,)``.

    Args:
        views_a: ``(B, 1 + k)`` scores of the first image: original, then its ``k`` weak views.
        views_b: ``(B, 1 + k)`` scores of the second image.
        label: Probability that the first image is preferred.
    """
    better, worse = _orient(views_a, views_b, label)
    inter = better.min(dim=1).values - worse.max(dim=1).values
    spread = lambda s: s.max(dim=1).values - s.min(dim=1).values  # noqa: E731
    intra = (spread(better) + spread(worse)) / 2
    # -log(e^inter / (e^inter + e^intra)) = log(1 + e^(intra - inter))
    return F.softplus(intra - inter)


def step1_weight(gap: torch.Tensor, b: float = 0.3, tau: float = 0.2) -> torch.Tensor:
    """Eq. 7 gate ``1 / (1 + exp((dS - b) / tau))``."""
    if tau <= 0:
        raise ValueError(f"tau={tau} must be positive")
    return torch.sigmoid(-(gap - b) / tau)


def step2_weight(gap: torch.Tensor) -> torch.Tensor:
    """Eq. 8 weights ``softmax(dS)`` over the pairs of the batch."""
    return gap.softmax(dim=0)


def stable_preference_loss(
    per_pair: torch.Tensor,
    views_a: torch.Tensor,
    views_b: torch.Tensor,
    label: torch.Tensor | float,
    step: int,
    switch_step: int,
    b: float = 0.3,
    tau: float = 0.2,
) -> torch.Tensor:
    """The Stable Preference objective of one mini-batch (eq. 7 before ``switch_step``, eq. 8 from it on).

    Args:
        per_pair: ``(B,)`` unreduced preference loss ``L_pref`` of each pair (e.g. ``preference_kl(...,
            reduction="none")``).
        views_a: ``(B, 1 + k)`` scores of the first images, original view first.
        views_b: ``(B, 1 + k)`` scores of the second images.
        label: Probability that the first image is preferred.
        step: Optimiser steps taken so far.
        switch_step: First step of step 2.
        b: Offset of the step-1 gate.
        tau: Temperature of the step-1 gate.
    """
    if per_pair.shape != views_a.shape[:1]:
        raise ValueError(f"per_pair has shape {tuple(per_pair.shape)}; expected ({views_a.shape[0]},), one per pair")
    total = per_pair + anti_interference_loss(views_a, views_b, label)
    gap = score_gap(views_a, views_b, label).detach()
    if step < switch_step:
        return (step1_weight(gap, b, tau) * total).mean()
    return (step2_weight(gap) * total).sum()
