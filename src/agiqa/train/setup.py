"""What every run starts from, shared by ``train`` and ``run_protocol``: ``prepare(config) -> TrainSetup``.

The model of the config (heads initialised from ``train.seed``), its encoder frozen as configured, the data, its
image table and the encoder features of every image and view (``FeatureBank``), computed once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agiqa.data.sample import Dataset
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard
from agiqa.models.registry import build_model_from_card, resolve_card
from agiqa.train.augment import stable_preference_views
from agiqa.train.config import ConfigError, TrainConfig
from agiqa.train.features import FeatureBank
from agiqa.train.table import ImageTable, image_table


@dataclass(frozen=True)
class TrainSetup:
    """A model ready to train over its data.

    Attributes:
        model: The untrained model, encoder frozen as configured.
        dataset: The data to train on (the protocol swaps in each split's training side).
        table: Every image of the data, one row each.
        bank: Encoder features of every row (and Stable Preference's weak views).
        cached: Whether the features were precomputed through the cache (encoder entirely fixed).
        feature_seconds: Time spent computing (or reading) the features.
    """

    model: QualityModel
    dataset: Dataset
    table: ImageTable
    bank: FeatureBank
    cached: bool
    feature_seconds: float


def prepare(config: TrainConfig, dataset: Dataset | None = None) -> TrainSetup:
    """Build, freeze and encode: everything a run needs before its first step.

    Args:
        config: The run; ``train.num_threads`` (when set) applies from here on.
        dataset: The data already read (else read from ``config.data``).
    """
    t = config.train
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    model_card(config)  # a wrong model section is reported before the data is read
    dataset = dataset if dataset is not None else load_training_data(config)
    require_images(dataset, config)
    model = build_model(config)
    cached = apply_freeze(model, config)
    table = image_table(dataset)
    start = time.perf_counter()
    views = stable_preference_views(t.stable_preference)
    bank = FeatureBank(model, table, cached, t.cache_dir, views, progress=t.progress)
    return TrainSetup(model, dataset, table, bank, cached, time.perf_counter() - start)


def model_card(config: TrainConfig) -> ModelCard:
    """The card of the model a config trains, named ``config.name``.

    ``model`` is a registered card name, or a mapping: a whole card, or ``card: NAME`` plus the keys to change
    (``method_args`` and ``encoder_args`` are merged key by key).
    """
    spec: dict[str, Any] = {"card": config.model} if isinstance(config.model, str) else dict(config.model)
    if "card" in spec:
        try:
            base = resolve_card(spec.pop("card")).to_dict()
        except (KeyError, FileNotFoundError) as err:
            raise ConfigError(f"{config.source}: model: {err.args[0]}") from None
        merged = {key: {**base.get(key, {}), **spec.get(key, {})} for key in ("method_args", "encoder_args")}
        spec = {**base, **spec, **merged}
        spec["weights"] = None
        spec["reference"] = None  # the base's reference describes the base's scores, not the new model's
    spec.pop("name", None)
    try:
        return ModelCard.from_dict({"name": config.name, **spec}, source=f"{config.source} (model)")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{config.source}: bad `model` section: {err}") from None


def build_model(config: TrainConfig) -> QualityModel:
    """The untrained model of a config (heads initialised from ``train.seed``)."""
    card = model_card(config)
    torch.manual_seed(config.train.seed)
    return build_model_from_card(card)


def apply_freeze(model: QualityModel, config: TrainConfig) -> bool:
    """Freeze encoder layers as configured; returns True when the encoder is entirely fixed (cacheable)."""
    fz, mode = config.train.freeze, config.train.cache
    image = fz.image_fraction if fz.image_fraction is not None else fz.fraction
    text = fz.text_fraction if fz.text_fraction is not None else fz.fraction
    if fz.tower in ("image", "both"):
        model.encoder.freeze(image, "image")
    if fz.tower in ("text", "both"):
        model.encoder.freeze(text, "text")
    frozen = image >= 1.0 and text >= 1.0 and fz.tower == "both"
    cached = mode == "on" or (mode == "auto" and frozen)
    # saved with the heads even when caching fixes them (the lite projections), so a checkpoint never
    # depends on how an encoder initialises its trainable parts
    model.saved_encoder_keys = {f"encoder.{n}" for n, p in model.encoder.named_parameters() if p.requires_grad}
    if cached:
        model.encoder.requires_grad_(False)
        model.encoder.eval()
        if model.projects_in_head:
            for module in model.encoder.projection_modules():
                module.requires_grad_(True)
    return cached


def require_images(dataset: Dataset, config: TrainConfig) -> None:
    """Check that the dataset's image files are where its labels say, before any encoding starts.

    Raises:
        DatasetError: Some are missing; the message names ``data.root`` and how to check the folder.
    """
    from agiqa.data import DatasetError

    files = {s.image for s in dataset.samples} | {i for p in dataset.pairs for i in (p.image_a, p.image_b)}
    paths = sorted(f for f in files if isinstance(f, str))
    missing = [f for f in paths if not Path(f).is_file()]
    if missing:
        raise DatasetError(
            f"{config.source}: {len(missing)} of the {len(paths)} images of {dataset.name} are not where its labels "
            f"say (first: {missing[0]}); is data.root ({dataset.root}) the folder the dataset was unpacked to? "
            f"Check it with `agiqa datasets validate {dataset.name} --root {dataset.root}`"
        )


def load_training_data(config: TrainConfig) -> Dataset:
    """Read the dataset named by ``config.data`` (first ``limit`` samples when set).

    Raises:
        ConfigError: ``data.dataset`` is not a registered reader, or ``data.splits`` does not exist.
        FileNotFoundError, DatasetError: The dataset cannot be read from ``data.root``.
    """
    from agiqa.data import load_dataset

    d = config.data
    if not d.root:
        raise ValueError(f"{config.source}: data.root is empty; set it to the folder the dataset was unpacked to")
    if d.splits and not Path(d.splits).is_file():
        raise ConfigError(
            f"{config.source}: data.splits: {d.splits} does not exist; give a split file written by `agiqa splits "
            "make`, or leave data.splits out to train on every image"
        )
    try:
        dataset = load_dataset(d.dataset, d.root)
    except KeyError as err:
        raise ConfigError(f"{config.source}: data.dataset: {err.args[0]}") from None
    if d.limit is not None:
        dataset.samples = dataset.samples[: d.limit]
        keep = {s.image_id for s in dataset.samples}
        dataset.pairs = (
            [p for p in dataset.pairs if p.id_a in keep and p.id_b in keep] if keep else dataset.pairs[: d.limit]
        )
    return dataset
