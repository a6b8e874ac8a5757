"""The model folder ``agiqa train`` writes, and the card that says what it was trained on.

``config.yaml`` (the card: ``trained_on`` names the data, ``metrics`` holds the validation figures of the kept
epoch, ``reference`` the quantiles of its predictions on the training rows), ``model.safetensors``,
``model.training.json`` (the image ids it was trained and validated on: ``agiqa.models.training_set``),
``train_config.yaml`` and ``history.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import yaml

from agiqa.io import atomic_write_bytes
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.reference import Reference
from agiqa.models.training_set import TrainingSet, training_set_path
from agiqa.train.checkpoint import save_model_folder
from agiqa.train.config import TrainConfig
from agiqa.train.setup import model_card
from agiqa.train.table import ImageTable


def training_record(
    config: TrainConfig, table: ImageTable, train_rows: Sequence[int], val_rows: Sequence[int]
) -> TrainingSet:
    """What a run trained (``train_rows``) and validated (``val_rows``) on: the record kept beside its weights."""
    d = config.data
    split = f"training side of split {d.split_index} of {d.splits}" if d.splits else "all images (no split file)"
    if d.limit is not None:
        split += f", first {d.limit} samples"
    rows = [*train_rows, *val_rows]
    return TrainingSet(
        dataset=d.dataset,
        root=d.root,
        split=split,
        n_prompts=len({table.prompts[r] for r in rows}),
        train=[table.ids[r] for r in train_rows],
        validation=[table.ids[r] for r in val_rows],
    )


def validation_metrics(
    history: Sequence[dict[str, float]], keep_best: bool = True, kept: dict[str, float] | None = None
) -> dict[str, float]:
    """The validation figures of the weights a run kept: the best epoch's (``keep_best``), else the last one's.

    A model of several parts (an ensemble) keeps each part's best epoch (``val_part<i>`` in the history): its
    figures are ``kept``, measured on the weights put together, and ``val_epoch_part<i>`` says each part's epoch.

    Keys: ``val_<dimension>_srcc``, ``val_pair_acc`` and ``val_epoch`` (or ``val_epoch_part<i>``); empty without
    validation.
    """
    scored = [h for h in history if math.isfinite(h.get("val", math.nan))]
    if not scored:
        return {}
    entry = max(scored, key=lambda h: h["val"]) if keep_best else scored[-1]
    epochs = {"val_epoch": float(entry["epoch"])}
    parts = sorted(k for k in scored[0] if k.startswith("val_part"))
    if keep_best and parts and kept is not None:
        entry = kept
        epochs = {
            f"val_epoch_part{k.removeprefix('val_part')}": float(max(scored, key=lambda h: h[k])["epoch"])
            for k in parts
        }
    out = {f"val_{k.removeprefix('val_srcc_')}_srcc": v for k, v in entry.items() if k.startswith("val_srcc_")}
    if "val_pair_acc" in entry:
        out["val_pair_acc"] = entry["val_pair_acc"]
    return {**{k: round(float(v), 4) for k, v in out.items()}, **epochs}


def trained_card(
    card: ModelCard,
    config: TrainConfig,
    record: TrainingSet,
    history: Sequence[dict[str, float]],
    kept: dict[str, float] | None = None,
) -> ModelCard:
    """``card`` as trained by ``config``: named ``config.name``, with what it was trained on and its figures
    (``kept``: those of a model of several parts, see ``validation_metrics``)."""
    metrics = validation_metrics(history, config.train.keep_best, kept)
    epochs = [str(int(v)) for k, v in metrics.items() if k.startswith("val_epoch")]
    figures = (
        f"; metrics are the validation figures of epoch{'s' if len(epochs) > 1 else ''} {', '.join(epochs)}"
        if metrics
        else " (no validation)"
    )
    about = f"Trained with `agiqa train` ({config.source or config.name}) on {record.describe()}{figures}."
    description = f"{card.description.strip()} {about}".strip()
    return ModelCard.from_dict(
        {
            **card.to_dict(),
            "name": config.name,
            "trained_on": record.describe(),
            "metrics": metrics,
            "description": description,
        }
    )


def write_run_folder(
    config: TrainConfig,
    model: QualityModel,
    out_dir: str | Path,
    table: ImageTable,
    train_rows: Sequence[int],
    val_rows: Sequence[int],
    history: Sequence[dict[str, float]],
    reference: Reference | None = None,
    kept: dict[str, float] | None = None,
) -> Path:
    """Write the model folder of a finished run (see module docstring) and return it.

    ``reference`` (the quantiles of the model's predictions on its training rows, ``agiqa.train.reference``)
    replaces whatever reference the starting card had: a card never keeps another model's percentiles. ``kept``:
    the validation figures of the weights kept, for a model of several parts (``validation_metrics``).
    """
    record = training_record(config, table, train_rows, val_rows)
    card = trained_card(model.card or model_card(config), config, record, history, kept)
    extra = {"reference": reference.to_card_value() if reference is not None else None}
    folder = save_model_folder(model, out_dir, card, extra)
    record.save(training_set_path(ModelCard.from_yaml(folder / "config.yaml")))
    atomic_write_bytes(folder / "train_config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False).encode())
    atomic_write_bytes(folder / "history.json", json.dumps(list(history), indent=1).encode())
    return folder
