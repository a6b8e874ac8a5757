"""Glue between the trainer's batches and the loss functions of ``agiqa.losses``.

The trainer hands over model outputs per dimension; these functions pick the labelled entries, call the
method losses and reduce them. Per-pair losses stay unreduced until here, so Stable Preference can weight them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def regression_loss(
    out: dict[str, torch.Tensor], targets: torch.Tensor, dims: Sequence[str], name: str
) -> torch.Tensor:
    """Mean L1 (``l1``/``mae``) or squared error (``mse``) over the labelled (finite) entries of every dimension.

    Args:
        out: Model scores ``{dimension: (B,)}``.
        targets: ``(B, len(dims))`` MOS, NaN where a label is missing.
        dims: Trained dimensions, in the column order of ``targets``.
        name: ``l1``, ``mae`` or ``mse``.
    """
    from agiqa import losses

    fn = losses.mse_loss if name == "mse" else losses.l1_loss
    terms = []
    for j, dim in enumerate(dims):
        mask = torch.isfinite(targets[:, j])
        if mask.any():
            terms.append(fn(out[dim][mask], targets[mask, j]))
    if not terms:
        return next(iter(out.values())).sum() * 0.0
    return torch.stack(terms).sum()


def pair_loss(s_a: torch.Tensor, s_b: torch.Tensor, label: torch.Tensor, name: str) -> torch.Tensor:
    """Unreduced loss of each pair (scores already multiplied by the model's ``logit_scale``, if any).

    ``pairwise_ce`` (MINT-IQA eq. 4-5): cross-entropy of ``softmax(s_a, s_b)`` against the label, i.e.
    ``-log sigmoid(s_better - s_worse)`` for a hard label. ``kl`` (PrefIQA eq. 11): KL divergence between the
    label distribution ``(p, 1 - p)`` and ``softmax(s_a, s_b)``. The two differ by the label entropy (a constant
    for hard labels), so they give the same gradients; both are kept to name the paper's objective.
    """
    from agiqa import losses

    if name == "kl":
        return losses.preference_kl(s_a, s_b, label, reduction="none")
    if name == "pairwise_ce":
        return losses.pairwise_cross_entropy(s_a, s_b, label, reduction="none")
    raise ValueError(f"train.loss={name!r} is not a pair loss; use 'kl' or 'pairwise_ce'")


def stable_preference_loss(
    per_pair: torch.Tensor,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    label: torch.Tensor,
    views: Sequence[tuple[torch.Tensor, torch.Tensor]],
    step: int,
    options: Any,
) -> torch.Tensor:
    """Stable Preference (paper 004): preference + anti-interference loss, weighted by step 1 or step 2.

    Args:
        per_pair: Unreduced preference loss of each pair.
        s_a: Scores of the first images on the original view.
        s_b: Scores of the second images.
        label: Probability that ``a`` is preferred; ties (0.5) take the order of the scores.
        views: ``(s_a, s_b)`` on each weak view.
        step: Optimiser steps taken so far; step 2 starts at ``options.switch_step``.
        options: ``StablePreferenceConfig``.
    """
    from agiqa.losses import stable_preference as sp

    views_a = torch.stack([s_a, *[v[0] for v in views]], dim=1)
    views_b = torch.stack([s_b, *[v[1] for v in views]], dim=1)
    return sp.stable_preference_loss(
        per_pair, views_a, views_b, label, step=step, switch_step=options.switch_step, b=options.b, tau=options.tau
    )
