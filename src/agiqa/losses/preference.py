"""Losses on pairs of images of the same prompt.

Both take the scores ``s_a``, ``s_b`` of the two images and ``label``, the probability that ``a`` is preferred
(1 = a better, 0 = b better, 0.5 = tie; PrefIQA's ``p_1``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from agiqa.losses.regression import REDUCTIONS


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}; use one of {REDUCTIONS}")
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _pair_log_probs(s_a: torch.Tensor, s_b: torch.Tensor, scale: float) -> torch.Tensor:
    if s_a.shape != s_b.shape:
        raise ValueError(f"s_a has shape {tuple(s_a.shape)} but s_b {tuple(s_b.shape)}; they must match")
    return F.log_softmax(scale * torch.stack([s_a, s_b], dim=-1), dim=-1)


def preference_kl(
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    label: torch.Tensor | float,
    scale: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """PrefIQA eq. 11: ``sum_i p_i (log p_i - log p^_i)`` with ``p^ = softmax(scale * (s_a, s_b))``.

    Args:
        s_a: ``(B,)`` scores of the first images.
        s_b: ``(B,)`` scores of the second images.
        label: ``p_1``, probability that the first image is preferred (``p_2 = 1 - p_1``).
        scale: Multiplier of the scores before the softmax (1 = eq. 11 as printed; a cosine-score model
            such as PrefIQA uses its ``logit_scale``).
        reduction: ``mean``, ``sum`` or ``none``.
    """
    log_q = _pair_log_probs(s_a, s_b, scale)
    p_a = torch.as_tensor(label, dtype=log_q.dtype, device=log_q.device).expand_as(s_a)
    p = torch.stack([p_a, 1 - p_a], dim=-1)
    return _reduce(F.kl_div(log_q, p, reduction="none").sum(dim=-1), reduction)


def pairwise_cross_entropy(
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    label: torch.Tensor | float,
    scale: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """MINT-IQA eq. 5: ``-log sigmoid(s_better - s_worse)``, as the cross-entropy of ``softmax(s_a, s_b)``.

    With a soft ``label`` it is ``-(p log sigmoid(s_a - s_b) + (1 - p) log sigmoid(s_b - s_a))``.

    Args:
        s_a: ``(B,)`` scores of the first images.
        s_b: ``(B,)`` scores of the second images.
        label: Probability that the first image is preferred.
        scale: Multiplier of the score difference.
        reduction: ``mean``, ``sum`` or ``none``.
    """
    log_q = _pair_log_probs(s_a, s_b, scale)
    p_a = torch.as_tensor(label, dtype=log_q.dtype, device=log_q.device).expand_as(s_a)
    return _reduce(-(p_a * log_q[..., 0] + (1 - p_a) * log_q[..., 1]), reduction)


def ranking_pairs(ranks: Sequence[float]) -> list[tuple[int, int]]:
    """MINT-IQA's ranking expansion: all ``C(k, 2)`` pairs ``(better, worse)`` of a ranking (1 = best).

    Tied ranks give no pair.

    Example:
        >>> ranking_pairs([2, 1, 3])
        [(1, 0), (0, 2), (1, 2)]
    """
    pairs = []
    for i, j in itertools.combinations(range(len(ranks)), 2):
        if ranks[i] < ranks[j]:
            pairs.append((i, j))
        elif ranks[j] < ranks[i]:
            pairs.append((j, i))
    return pairs


def ranking_cross_entropy(scores: torch.Tensor, ranks: Sequence[float], reduction: str = "mean") -> torch.Tensor:
    """MINT-IQA eq. 5 over a ranking of ``k`` images of one prompt: the loss of each ``(better, worse)`` pair.

    Args:
        scores: ``(k,)`` scores of the ranked images.
        ranks: Rank of each image, 1 = best.
        reduction: ``mean``, ``sum`` or ``none`` (one value per pair).
    """
    if len(ranks) != scores.shape[0]:
        raise ValueError(f"ranks has {len(ranks)} entries but scores {scores.shape[0]}; give one rank per image")
    pairs = ranking_pairs(ranks)
    if not pairs:
        return _reduce(scores.new_zeros(0), reduction) if reduction == "none" else scores.sum() * 0.0
    better = scores[[p[0] for p in pairs]]
    worse = scores[[p[1] for p in pairs]]
    return pairwise_cross_entropy(better, worse, 1.0, reduction=reduction)
