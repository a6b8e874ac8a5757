"""Mismatched prompts as negatives: an image must score lower under another prompt than under its own.

A model trained on MOS alone learns that good-looking images score high whatever the prompt says; alignment then
is a quality score under another name. Here every training image of a batch is also scored under ``per_item``
prompts of other training images, and the prompt-dependent dimensions pay a loss when the wrong prompt does not
score lower: a hinge ``max(0, margin - (s_own - s_other))`` for MOS objectives, the objective's own pair loss with
the own prompt preferred for pair objectives (so PrefIQA's eq. 11 sees a mismatched pair like any other).

Negatives are drawn from the prompts of the training rows only (never validation or test prompts), seeded by the
optimiser step, so a resumed run draws the same ones. ``hard`` sends a share of them to prompts that share a
content word with the own prompt ("a red car" against "a red apple"): harder to tell apart than random prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch

from agiqa.losses import pairwise_cross_entropy, preference_kl
from agiqa.models.base import QualityModel
from agiqa.models.prompts import ALIGNMENT_DIMENSIONS
from agiqa.train.config import MismatchConfig
from agiqa.train.features import FeatureBank

_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_STOP = frozenset("the and with for from into over under its his her their this that are was were has have".split())


def content_words(prompt: str) -> set[str]:
    """Lower-case words of three letters or more, without a few function words."""
    return {w for w in _WORD.findall(prompt.lower()) if w not in _STOP}


class Mismatch:
    """The mismatch loss of one run.

    Args:
        options: The config section.
        bank: Features of the run (prompts are rows of ``bank.prompts``).
        train_rows: Table rows trained on; their prompts are the only negatives.
        dims: Dimensions the loss applies to.
        seed: Seed of the draws (combined with the step).
    """

    def __init__(
        self, options: MismatchConfig, bank: FeatureBank, train_rows: Sequence[int], dims: Sequence[str], seed: int
    ) -> None:
        self.options, self.bank, self.dims, self.seed = options, bank, list(dims), seed
        rows = torch.as_tensor(list(train_rows), dtype=torch.long)
        self.candidates = torch.unique(bank.prompt_row.cpu()[rows])
        words = [content_words(bank.prompts[int(p)]) for p in self.candidates]
        self.hard = [
            torch.as_tensor([j for j, other in enumerate(words) if j != i and mine & other], dtype=torch.long)
            for i, mine in enumerate(words)
        ]
        self.position = {int(p): i for i, p in enumerate(self.candidates)}

    def negatives(self, rows: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image rows, other prompt rows)``, ``per_item`` per given row whose prompt is a training prompt."""
        gen = torch.Generator().manual_seed(self.seed * 7_919 + step)
        own = self.bank.prompt_row.cpu()[rows.cpu()]
        keep = torch.as_tensor([int(p) in self.position for p in own], dtype=torch.bool)
        rows, own = rows.cpu()[keep].repeat(self.options.per_item), own[keep].repeat(self.options.per_item)
        n = len(self.candidates)
        if n < 2 or not len(rows):
            return rows[:0], own[:0]
        mine = torch.as_tensor([self.position[int(p)] for p in own], dtype=torch.long)
        pick = torch.randint(0, n - 1, (len(rows),), generator=gen)
        pick = pick + (pick >= mine).long()  # uniform over the other prompts
        coin = torch.rand(len(rows), generator=gen) < self.options.hard
        for k in torch.nonzero(coin).flatten().tolist():
            pool = self.hard[int(mine[k])]
            if len(pool):
                pick[k] = pool[torch.randint(0, len(pool), (1,), generator=gen)]
        return rows, self.candidates[pick]

    def loss(
        self,
        model: QualityModel,
        rows: torch.Tensor,
        own_scores: dict[str, torch.Tensor],
        step: int,
        pair_loss: str | None,
        part: int | None = None,
    ) -> torch.Tensor:
        """Mismatch loss of a batch of image ``rows`` whose own-prompt scores are ``own_scores``.

        Args:
            model: The model being trained.
            rows: Table rows of the batch's images (in the order of ``own_scores``).
            own_scores: ``{dimension: (len(rows),)}`` scores under the own prompts.
            step: Optimiser step (seeds the draw).
            pair_loss: The objective's pair loss (``kl`` / ``pairwise_ce``), or None for MOS objectives.
            part: Which of the model's loss parts ``model`` is (picks its margin), None for a model of one part.
        """
        position = {int(r): i for i, r in enumerate(rows.tolist())}
        neg_rows, neg_prompts = self.negatives(rows, step)
        zero = next(iter(own_scores.values())).sum() * 0.0
        if not len(neg_rows):
            return zero
        other = model.forward_head(self.bank.batch(neg_rows, prompt_rows=neg_prompts))
        index = torch.as_tensor([position[int(r)] for r in neg_rows], device=zero.device)
        terms = []
        for dim in self.dims:
            s_own, s_other = own_scores[dim][index], other[dim]
            if pair_loss == "kl":
                terms.append(preference_kl(s_own, s_other, 1.0))
            elif pair_loss == "pairwise_ce":
                terms.append(pairwise_cross_entropy(s_own, s_other, 1.0))
            else:
                terms.append(torch.relu(self.options.margin_of(part) - (s_own - s_other)).mean())
        return self.options.weight * torch.stack(terms).sum()


def mismatch_dimensions(options: MismatchConfig, trained: Sequence[str], source: str) -> list[str]:
    """The dimensions the loss applies to: configured (each must be trained), else the trained prompt-readers."""
    if options.dimensions is None:
        dims = [d for d in trained if d in ALIGNMENT_DIMENSIONS]
        if not dims:
            raise ValueError(
                f"{source}: train.mismatch is enabled but no trained dimension reads the prompt ({list(trained)}); "
                "set train.mismatch.dimensions"
            )
        return dims
    unknown = [d for d in options.dimensions if d not in trained]
    if unknown:
        raise ValueError(f"{source}: train.mismatch.dimensions {unknown} are not trained dimensions {list(trained)}")
    return list(options.dimensions)


def prompt_swap_share(own: np.ndarray, other: np.ndarray) -> float:
    """Share of images whose score under another prompt is strictly lower than under their own."""
    return float(np.mean(np.asarray(other) < np.asarray(own)))
