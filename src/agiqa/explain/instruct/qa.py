"""Question-answer pairs for instruction tuning, built from labels as in MINT-IQA (001, sec. III-D, Fig. 5).

For each labelled dimension of a sample (``quality``, ``authenticity``, ``correspondence``; AGIQA-3K's
``alignment`` is asked as correspondence) the pairs of Fig. 5 are built from the MOS:

* ``level`` — "How is the quality of the image?" -> "The quality of the image is good. The quality score is
  3.41." This is the single-choice question VQA accuracy is measured on (sec. V-D).
* ``assess`` — "Please assess the image from quality perspective." -> the same answer.
* ``aligned`` (correspondence only) — "Is the generated image and the text aligned?" -> "The image and its prompt
  are mostly consistent."
* ``why`` — "Why is the quality of the image low?", only when the sample carries a fine-grained annotation for
  the dimension (``sample.meta["annotations"][dimension]``, as AIGCIQA2023+ has) and the level is fair or worse.
* ``scores`` — "Give me N scores to assess the image from the following N perspectives: ..." -> all MOS.

The paper's LLaMA-based question expansion is not reproduced (the templates above are the question set).

Level words on the five-level scale come from ``LevelScale``: by default the quintiles of the *training* MOS of
each dimension, so each level holds a fifth of the training images and guessing at random scores 1/5 (the
baseline of sec. V-D); ``LevelScale.from_range`` gives equal fifths of a nominal range instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from agiqa.data.sample import Sample
from agiqa.explain.structured import LEVELS, level_index

QUESTION_DIMENSION = {"alignment": "correspondence"}
"""Label dimensions asked under another name in the questions."""

LEVEL_QUESTIONS = {
    "quality": "How is the quality of the image?",
    "authenticity": "How is the authenticity of the image?",
    "correspondence": "How is the correspondence between the image and its text prompt?",
}
CONSISTENCY = (
    "totally inconsistent",
    "mostly inconsistent",
    "partially inconsistent",
    "mostly consistent",
    "fully consistent",
)


@dataclass(frozen=True)
class QAPair:
    """One instruction-tuning example.

    Attributes:
        image_id: The sample's ``image_id``.
        image: The sample's image (path or bytes).
        prompt: The prompt the image was generated from.
        dimension: Question dimension (``quality``, ``authenticity``, ``correspondence``) or ``all``.
        kind: ``level``, ``assess``, ``aligned``, ``why`` or ``scores``.
        question: The instruction.
        answer: The target answer.
        level: The true level word for ``level`` / ``assess`` / ``aligned`` questions, else None.
    """

    image_id: str
    image: str | bytes
    prompt: str
    dimension: str
    kind: str
    question: str
    answer: str
    level: str | None = None


@dataclass(frozen=True)
class LevelScale:
    """Four ascending thresholds splitting one dimension's MOS into the five levels.

    Attributes:
        thresholds: Boundaries between bad|poor|fair|good|perfect.
        rule: How they were chosen (written into reports).
    """

    thresholds: tuple[float, float, float, float]
    rule: str

    @classmethod
    def quantiles(cls, values: Sequence[float]) -> LevelScale:
        """Quintiles of ``values`` (the training MOS of one dimension)."""
        if len(values) < 5:
            raise ValueError(
                f"LevelScale.quantiles: need at least 5 MOS values to split into levels, got {len(values)}"
            )
        cuts = np.quantile(np.asarray(values, dtype=float), [0.2, 0.4, 0.6, 0.8])
        return cls(tuple(float(c) for c in cuts), f"quintiles of {len(values)} training MOS")

    @classmethod
    def from_range(cls, low: float, high: float) -> LevelScale:
        """Equal fifths of the nominal range ``[low, high]``."""
        step = (high - low) / len(LEVELS)
        return cls(tuple(low + step * k for k in range(1, len(LEVELS))), f"equal fifths of [{low:g}, {high:g}]")

    def level(self, value: float) -> str:
        """Level word of a MOS."""
        return LEVELS[level_index(value, self.thresholds)]


def fit_level_scales(samples: Iterable[Sample], dimensions: Sequence[str] | None = None) -> dict[str, LevelScale]:
    """Quintile scales per label dimension from (training) samples.

    Args:
        samples: Labelled samples (use the training split only, so test labels do not shape the levels).
        dimensions: Label dimensions to fit (default: every dimension with a question).
    """
    values: dict[str, list[float]] = {}
    for s in samples:
        for dim, mos in s.labels.items():
            values.setdefault(dim, []).append(float(mos))
    wanted = dimensions or [d for d in values if question_dimension(d) in LEVEL_QUESTIONS]
    missing = [d for d in wanted if d not in values]
    if missing:
        raise ValueError(f"fit_level_scales: no sample has labels {missing}; labelled: {sorted(values)}")
    return {d: LevelScale.quantiles(values[d]) for d in wanted}


def question_dimension(label: str) -> str:
    """Name a label dimension is asked under (``alignment`` -> ``correspondence``)."""
    return QUESTION_DIMENSION.get(label, label)


def level_question(dimension: str) -> str:
    """The single-choice question of a dimension (sec. V-D's Q_q, Q_a, Q_c).

    Raises:
        ValueError: No question exists for the dimension.
    """
    asked = question_dimension(dimension)
    if asked not in LEVEL_QUESTIONS:
        raise ValueError(
            f"no question about {dimension!r}; questions exist for {', '.join(LEVEL_QUESTIONS)} (and alignment)"
        )
    return LEVEL_QUESTIONS[asked]


def level_answer(dimension: str, level: str, mos: float | None = None) -> str:
    """The answer sentence of a level question; the level word comes first, the MOS (if given) after."""
    asked = question_dimension(dimension)
    subject = (
        "the correspondence between the image and its prompt"
        if asked == "correspondence"
        else (f"the {asked} of the image")
    )
    text = f"{subject[0].upper()}{subject[1:]} is {level}."
    if mos is not None:
        text += f" The {asked} score is {mos:.2f}."
    return text


def qa_pairs(sample: Sample, scales: dict[str, LevelScale], scores: bool = True) -> list[QAPair]:
    """The Fig. 5 question-answer pairs of one sample (see module docstring).

    Args:
        sample: A labelled sample.
        scales: Level scale per label dimension (``fit_level_scales``); dimensions without one are skipped.
        scores: Put the MOS into the answers (Fig. 5 does; shorter answers train faster on a CPU).
    """
    pairs: list[QAPair] = []
    notes = sample.meta.get("annotations", {}) if isinstance(sample.meta.get("annotations"), dict) else {}

    def add(dimension: str, kind: str, question: str, answer: str, level: str | None = None) -> None:
        pairs.append(QAPair(sample.image_id, sample.image, sample.prompt, dimension, kind, question, answer, level))

    scored = [d for d in sample.labels if d in scales]
    for label in scored:
        mos, asked = float(sample.labels[label]), question_dimension(label)
        level = scales[label].level(mos)
        note = str(notes.get(label) or notes.get(asked) or "").strip()
        answer = level_answer(label, level, mos if scores else None) + (f" {note}" if note else "")
        add(asked, "level", level_question(label), answer, level)
        add(asked, "assess", f"Please assess the image from {asked} perspective.", answer, level)
        if asked == "correspondence":
            consistency = CONSISTENCY[LEVELS.index(level)]
            add(
                asked,
                "aligned",
                "Is the generated image and the text aligned?",
                f"The image and its prompt are {consistency}.",
                level,
            )
        if note and LEVELS.index(level) <= 2:
            add(asked, "why", f"Why is the {asked} of the image low?", note)
    if len(scored) > 1 and scores:
        names = [question_dimension(d) for d in scored]
        add(
            "all",
            "scores",
            f"Give me {len(names)} scores to assess the image from the following perspectives: {', '.join(names)}.",
            " ".join(f"The {n} score is {float(sample.labels[d]):.2f}." for n, d in zip(names, scored, strict=False)),
        )
    return pairs


def build_qa(samples: Iterable[Sample], scales: dict[str, LevelScale], scores: bool = True) -> list[QAPair]:
    """``qa_pairs`` for every sample."""
    return [pair for s in samples for pair in qa_pairs(s, scales, scores)]
