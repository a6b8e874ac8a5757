"""Instruction tuning of the MINT-IQA branch over cached features, and its VQA evaluation (sec. IV-C-2, V-D).

The frozen parts (image encoder, scoring Q-Former, LLM) never change during instruction tuning, so the image tokens
and the scoring branch's queries are computed once per image (``BranchInputs``) and training touches only the
second Q-Former, the zero-initialised connection and the projection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from agiqa.explain.instruct.branch import InstructionBranch
from agiqa.explain.instruct.qa import QAPair, level_question, question_dimension
from agiqa.explain.instruct.vqa import VQARecord


@dataclass
class BranchInputs:
    """Frozen per-image inputs of the branch, aligned by ``image_ids``.

    Attributes:
        image_ids: Image identifiers, one per row.
        image_tokens: ``(N, L, D_img)`` image tokens of the frozen image encoder.
        score_queries: ``(N, Q, D_q)`` queries of the frozen scoring Q-Former (None: no scoring branch).
    """

    image_ids: list[str]
    image_tokens: torch.Tensor
    score_queries: torch.Tensor | None
    _row: dict[str, int] = field(default_factory=dict, repr=False)

    def rows(self, ids: Sequence[str]) -> torch.Tensor:
        """Row indices of ``ids``."""
        if not self._row:
            self._row = {i: n for n, i in enumerate(self.image_ids)}
        missing = [i for i in ids if i not in self._row]
        if missing:
            raise KeyError(f"no cached branch inputs for images {missing[:3]}; cache them first")
        return torch.tensor([self._row[i] for i in ids])

    def batch(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Float32 image tokens and score queries of ``ids``."""
        rows = self.rows(ids)
        queries = self.score_queries[rows].float() if self.score_queries is not None else None
        return self.image_tokens[rows].float(), queries


@dataclass
class TuningLog:
    """What a tuning run did: steps, seconds, and the loss every ``every`` steps."""

    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)


def tune_branch(
    branch: InstructionBranch,
    pairs: Sequence[QAPair],
    inputs: BranchInputs,
    *,
    steps: int = 300,
    batch_size: int = 8,
    lr: float = 1e-4,
    seed: int = 0,
    time_budget_s: float | None = None,
    every: int = 25,
    log: Callable[[str], None] | None = None,
) -> TuningLog:
    """Train the branch with the LM loss on shuffled question-answer pairs (AdamW, constant ``lr``).

    Args:
        branch: The branch to train (its LLM is frozen).
        pairs: Training question-answer pairs.
        inputs: Cached frozen inputs covering every pair's image.
        steps: Optimiser steps.
        batch_size: Pairs per step.
        lr: Learning rate.
        seed: Seed of the pair order.
        time_budget_s: Stop early once this many seconds have passed (the log records the steps done).
        every: Loss logging interval.
        log: Called with a progress line every ``every`` steps.
    """
    if not pairs:
        raise ValueError("tune_branch: no question-answer pairs to train on")
    params = [p for p in branch.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    order: list[int] = []
    record, running, start = TuningLog(), [], time.perf_counter()
    branch.train()
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order += rng.sample(range(len(pairs)), len(pairs))
        chosen = [pairs[order.pop()] for _ in range(batch_size)]
        image_tokens, queries = inputs.batch([p.image_id for p in chosen])
        loss = branch.loss(image_tokens, queries, [p.question for p in chosen], [p.answer for p in chosen])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append(float(loss.detach()))
        record.steps = step
        if step % every == 0 or step == steps:
            record.losses.append(sum(running) / len(running))
            running = []
            if log is not None:
                log(f"step {step}/{steps} loss {record.losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)")
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            break
    branch.eval()
    record.seconds = time.perf_counter() - start
    return record


@torch.no_grad()
def ask_levels(
    branch: InstructionBranch,
    inputs: BranchInputs,
    truths: dict[str, dict[str, str]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 16,
) -> list[VQARecord]:
    """Ask each image the single-choice level question of each of its labelled dimensions (eq. 6).

    Args:
        branch: A trained branch.
        inputs: Cached inputs of the images.
        truths: ``{image_id: {label dimension: true level}}``.
        batch_size: Images per generation call.
        max_new_tokens: Generation budget per answer.

    Returns:
        One ``VQARecord`` per (image, question) with the generated answer.
    """
    branch.eval()
    records = []
    dims = sorted({d for t in truths.values() for d in t})
    for dim in dims:
        ids = [i for i, t in truths.items() if dim in t]
        question = level_question(dim)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            image_tokens, queries = inputs.batch(chunk)
            answers = branch.generate(image_tokens, queries, [question] * len(chunk), max_new_tokens)
            records += [
                VQARecord(i, question_dimension(dim), a, truths[i][dim]) for i, a in zip(chunk, answers, strict=False)
            ]
    return records
