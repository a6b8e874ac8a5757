"""VQA accuracy of generated answers (MINT-IQA, 001, sec. V-D, eq. 6-10).

* ``distill`` (eq. 7, Distill): the level keywords of a generated answer, in the order they appear. The keywords
  are the five level words plus a few documented synonyms (``SYNONYMS``: "excellent" -> perfect, "average" ->
  fair, ...). Negated words ("not good") are skipped.
* ``match`` (eq. 7, Match): the single-choice option an answer picks = its first level keyword; an answer with
  none picks nothing and counts as wrong (no answer is invented for it).
* ``vqa_accuracy`` (eq. 8-10): per question type, the mean over images of the per-image mean of correct answers.
* ``random_baseline``: the accuracy of choosing one of the options uniformly at random (1/5 for five levels).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agiqa.explain.structured import LEVELS

SYNONYMS = {
    "excellent": "perfect",
    "outstanding": "perfect",
    "flawless": "perfect",
    "high": "good",
    "great": "good",
    "average": "fair",
    "moderate": "fair",
    "medium": "fair",
    "acceptable": "fair",
    "mediocre": "fair",
    "low": "poor",
    "weak": "poor",
    "terrible": "bad",
    "awful": "bad",
    "very poor": "bad",
}
"""Words mapped onto a level (documented choice; the paper does not list its keyword rules)."""

_KEYWORDS = sorted([*LEVELS, *SYNONYMS], key=len, reverse=True)
_PATTERN = re.compile(r"\b(not\s+|n't\s+)?(" + "|".join(re.escape(k) for k in _KEYWORDS) + r")\b", re.IGNORECASE)


def distill(answer: str) -> list[str]:
    """Level words an answer states, in order (synonyms mapped, negated words skipped)."""
    found = []
    for m in _PATTERN.finditer(answer):
        if m.group(1):
            continue
        word = m.group(2).lower()
        found.append(SYNONYMS.get(word, word))
    return found


def match(answer: str, options: Sequence[str] = LEVELS) -> str | None:
    """The option an answer picks: its first distilled keyword among ``options``; None when it names none."""
    return next((k for k in distill(answer) if k in options), None)


@dataclass(frozen=True)
class VQARecord:
    """One asked question: the image, its question type, the generated answer and the true level."""

    image_id: str
    qtype: str
    answer: str
    truth: str

    @property
    def correct(self) -> bool:
        """Whether the matched option equals the annotation (eq. 8-10's indicator)."""
        return match(self.answer) == self.truth


def vqa_accuracy(records: Iterable[VQARecord]) -> dict[str, float]:
    """Eq. 8-10: for each question type, mean over the K images of the per-image accuracy over its questions."""
    per_image: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        per_image[r.qtype][r.image_id].append(r.correct)
    return {qtype: sum(sum(v) / len(v) for v in images.values()) / len(images) for qtype, images in per_image.items()}


def answered_rate(records: Iterable[VQARecord]) -> dict[str, float]:
    """Share of answers per question type that name any option at all."""
    counts: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        counts[r.qtype].append(match(r.answer) is not None)
    return {q: sum(v) / len(v) for q, v in counts.items()}


def random_baseline(n_options: int = len(LEVELS)) -> float:
    """Expected accuracy of a uniformly random choice among ``n_options``."""
    if n_options < 1:
        raise ValueError(f"n_options={n_options}: need at least one option")
    return 1.0 / n_options


def majority_baseline(train_levels: Sequence[str], test_levels: Sequence[str]) -> float:
    """Accuracy of always answering the most common training level (a stronger floor than random)."""
    if not train_levels or not test_levels:
        raise ValueError("majority_baseline needs non-empty training and test levels")
    common = max(set(train_levels), key=list(train_levels).count)
    return sum(t == common for t in test_levels) / len(test_levels)
