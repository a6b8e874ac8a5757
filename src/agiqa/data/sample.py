"""One data model for every benchmark: samples with MOS labels, same-prompt groups, and preference pairs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """An image, its prompt and its labels.

    Attributes:
        image: Path of the image file, or its encoded bytes (Pick-a-Pic parquet).
        prompt: The text the image was generated from.
        image_id: Stable identifier, unique within a dataset (file name relative to the root, or a uid).
        labels: MOS per dimension (``quality``, ``alignment``, ``authenticity``, ``correspondence`` ...).
        stds: Standard deviation of the MOS per dimension, where the dataset gives one.
        group: Same-prompt group id (defaults to the prompt); splits never put one group on both sides.
        rank: Rank within the group (1 is best) for ranking datasets.
        meta: Anything else the reader knows (generator, style, row number).
    """

    image: str | bytes
    prompt: str
    image_id: str
    labels: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)
    group: str | None = None
    rank: int | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def group_id(self) -> str:
        """The group this sample belongs to: ``group`` if set, else its prompt."""
        return self.group if self.group is not None else self.prompt


@dataclass(frozen=True)
class PreferencePair:
    """Two images of one prompt and which one people preferred.

    Attributes:
        prompt: The shared prompt.
        image_a: Path or bytes of the first image.
        image_b: Path or bytes of the second image.
        label: Probability that ``image_a`` is preferred: 1.0, 0.0, or 0.5 for a tie.
        group: Same-prompt group id (defaults to the prompt).
        id_a: Identifier of ``image_a``.
        id_b: Identifier of ``image_b``.
    """

    prompt: str
    image_a: str | bytes
    image_b: str | bytes
    label: float
    id_a: str
    id_b: str
    group: str | None = None

    @property
    def group_id(self) -> str:
        """The group this pair belongs to: ``group`` if set, else its prompt."""
        return self.group if self.group is not None else self.prompt

    @property
    def is_tie(self) -> bool:
        """Whether people rated both images the same."""
        return self.label == 0.5


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset, located precisely enough to fix it.

    Attributes:
        kind: Short category: ``missing-file``, ``duplicate``, ``unreadable``, ``bad-label``, ``missing-column`` ...
        where: File and row (or image path) at fault.
        message: What is wrong and what would fix it.
        fatal: True when the dataset cannot be used until this is fixed.
    """

    kind: str
    where: str
    message: str
    fatal: bool = False


@dataclass
class Dataset:
    """A benchmark as read from disk: its samples, its pairs, and what was wrong with the files.

    Attributes:
        name: Registry name of the dataset (``agiqa3k``, ``imagereward`` ...).
        root: Folder it was read from.
        samples: Images with MOS labels or ranks.
        pairs: Same-prompt preference pairs (empty for pure MOS datasets).
        dimensions: The label dimensions present in ``samples``.
        problems: Everything the reader noticed and did not silently fix.
    """

    name: str
    root: Path
    samples: list[Sample] = field(default_factory=list)
    pairs: list[PreferencePair] = field(default_factory=list)
    dimensions: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def prompts(self) -> list[str]:
        """Distinct prompts, in first-seen order."""
        return list(dict.fromkeys(s.prompt for s in self.samples))

    @property
    def usable(self) -> bool:
        """False when a fatal problem was found or there is nothing to evaluate on."""
        return not any(p.fatal for p in self.problems) and bool(self.samples or self.pairs)

    def problem_counts(self) -> dict[str, int]:
        """Number of problems per kind."""
        return dict(Counter(p.kind for p in self.problems))
