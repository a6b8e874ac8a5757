"""Stable Preference (004): anti-interference loss over weak views and the two-step weighting.

All losses are pure functions of scores. For a pair ``(I_a, I_b)`` the model scores the original images and
``k`` weak views of each (``weak_views``); ``views_a`` / ``views_b`` hold them as ``(B, 1 + k)``, the original
first.

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

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


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


def random_resized_box(
    width: int, height: int, rng: np.random.Generator, area: tuple[float, float] = (0.85, 1.0)
) -> tuple[int, int, int, int]:
    """Crop box ``(left, top, right, bottom)``: area fraction uniform in ``area``, aspect ratio log-uniform in
    [3/4, 4/3]; after 10 draws that do not fit, the whole image."""
    if not 0 < area[0] <= area[1] <= 1:
        raise ValueError(f"area={area} must satisfy 0 < low <= high <= 1")
    for _ in range(10):
        target = rng.uniform(*area) * width * height
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    return 0, 0, width, height


def weak_view(
    image: Image.Image | torch.Tensor, rng: np.random.Generator, area: tuple[float, float] = (0.85, 1.0)
) -> Image.Image | torch.Tensor:
    """One weak view: horizontal flip with probability 1/2, then a random resized crop back to the input size.

    The crop is ``random_resized_box`` (the usual random-resized-crop recipe).

    Args:
        image: A PIL image or a ``(C, H, W)`` tensor.
        rng: Source of randomness (seed it for reproducible views).
        area: Bounds of the crop area as a fraction of the image (0.85-1 in the paper).
    """
    is_pil = isinstance(image, Image.Image)
    width, height = image.size if is_pil else (image.shape[-1], image.shape[-2])
    flip = rng.random() < 0.5
    box = random_resized_box(width, height, rng, area)
    if is_pil:
        out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else image
        return out.crop(box).resize((width, height), Image.Resampling.BICUBIC)
    out = image.flip(-1) if flip else image
    crop = out[..., box[1] : box[3], box[0] : box[2]]
    return F.interpolate(crop.unsqueeze(0).float(), size=(height, width), mode="bilinear", align_corners=False)[0]


def weak_views(
    image: Image.Image | torch.Tensor, k: int = 3, seed: int = 0, area: tuple[float, float] = (0.85, 1.0)
) -> list[Image.Image | torch.Tensor]:
    """``k`` weak views of one image (3 in the paper), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [weak_view(image, rng, area) for _ in range(k)]
