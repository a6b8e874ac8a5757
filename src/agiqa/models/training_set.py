"""What a model was trained on, as a record beside its weights: ``<weights stem>.training.json``.

``agiqa train`` writes ``model.training.json`` beside ``model.safetensors``; the packaged default's record is
``agiqa/weights/agiqa-lite.training.json`` beside ``agiqa-lite.safetensors`` (``benchmarks/train_default.py`` writes
it with ``agiqa.train.run_folder.training_record``). ``agiqa evaluate`` reads it to warn when a model is evaluated
on images it was trained or validated on. Images are named by the dataset's image ids (``agiqa.data`` readers give
the same ids to the same images wherever the dataset is unpacked), so the check needs no image bytes.

The file::

    {"agiqa_training_set": 1, "dataset": "agiqa3k", "root": "../shared/data/agiqa3k",
     "split": "all images (no split file)", "n_prompts": 240,
     "train": ["AttnGAN_normal_000.jpg", ...], "validation": [...]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agiqa.io import atomic_write_bytes
from agiqa.models.card import ModelCard
from agiqa.models.registry import weights_path

FORMAT = 1
SUFFIX = ".training.json"


@dataclass(frozen=True)
class TrainingSet:
    """The images a model's weights were fitted (``train``) and selected (``validation``) on.

    Attributes:
        dataset: Reader name of the dataset (``agiqa3k`` ...).
        root: Where it was read from, as the training config gave it.
        split: Which part of it: ``all images (no split file)`` or the split file and index.
        n_prompts: Distinct prompts among the training and validation images.
        train: Image ids the weights were fitted on.
        validation: Image ids held out to keep the best epoch.
    """

    dataset: str
    root: str
    split: str
    n_prompts: int
    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for a model card's ``trained_on``."""
        held = f", {len(self.validation)} more held out for validation" if self.validation else ""
        return f"{self.dataset} at {self.root}, {self.split}: {len(self.train)} images{held}; {self.n_prompts} prompts"

    def overlap(self, image_ids: Iterable[str]) -> tuple[int, int]:
        """How many of ``image_ids`` the model was trained on, and how many it was validated on."""
        ids = set(image_ids)
        return len(ids & set(self.train)), len(ids & set(self.validation))

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (see module docstring), atomically."""
        path = Path(path)
        atomic_write_bytes(path, (json.dumps({"agiqa_training_set": FORMAT, **asdict(self)}, indent=1) + "\n").encode())
        return path

    @classmethod
    def read(cls, path: str | Path) -> TrainingSet:
        """Read a record.

        Raises:
            ValueError: The file is not a training-set record of a known format (the message names it).
        """
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
            if doc.pop("agiqa_training_set") != FORMAT:
                raise ValueError("unknown format")
            return cls(**doc)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: not an agiqa training-set record ({err}); retrain or delete it") from None


def training_set_path(card: ModelCard) -> Path | None:
    """Where the card's training-set record belongs: beside its weights, ``<stem>.training.json`` (None without)."""
    weights = weights_path(card)
    return weights.with_name(weights.name.removesuffix(weights.suffix) + SUFFIX) if weights is not None else None


def load_training_set(card: ModelCard) -> TrainingSet | None:
    """The card's training-set record, or None when it has none (zero-shot, untrained, or trained before records).

    Raises:
        ValueError: A record exists but cannot be read.
    """
    path = training_set_path(card)
    return TrainingSet.read(path) if path is not None and path.is_file() else None
