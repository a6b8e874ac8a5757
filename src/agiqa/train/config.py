"""Training configuration: typed dataclasses read from YAML, with errors that name the key and the file.

A config has four sections::

    name: tsp-mgs-lite            # name of the model card written beside the weights
    model:                        # a model card (see ``agiqa.models.card.ModelCard``) without ``name``
      method: tsp-mgs
      encoder: lite
      dimensions: [{name: quality, low: 0, high: 5}, {name: alignment, low: 0, high: 5, needs_prompt: true}]
      method_args: {}
    data:
      dataset: agiqa3k
      root: ../shared/data/agiqa3k
    train:
      loss: l1
      epochs: 20
      ...

Every key of ``data`` and ``train`` is a field of ``DataConfig`` / ``TrainSection`` below, with its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LOSSES = ("l1", "mae", "mse", "kl", "pairwise_ce")
SCHEDULERS = ("constant", "linear", "cosine", "cosine_with_restarts")
KEEP_BEST_BY = ("srcc", "srcc+swap")


class ConfigError(ValueError):
    """A config file is wrong; the message names the file and the key and says what would fix it."""


@dataclass
class StablePreferenceConfig:
    """Stable Preference (paper 004) on top of a preference objective.

    Attributes:
        enabled: Train with the two-step paradigm and the anti-interference loss.
        views: Number ``k`` of weak views per image (horizontal flip + random resized crop).
        crop_area: Lower and upper bound of the random crop area (fraction of the image).
        b: Offset of the step-1 gate ``1 / (1 + exp((dS - b) / tau))``.
        tau: Temperature of the step-1 gate.
        switch_step: Optimiser step after which step 2 (softmax of dS over the batch) replaces step 1.
        view_seed: Seed of the weak views, which are drawn once per image and cached.
    """

    enabled: bool = False
    views: int = 3
    crop_area: tuple[float, float] = (0.85, 1.0)
    b: float = 0.3
    tau: float = 0.2
    switch_step: int = 3000
    view_seed: int = 0


@dataclass
class MismatchConfig:
    """Mismatched prompts as negatives: the same image must score lower under another training prompt.

    Attributes:
        enabled: Add the mismatch loss to the objective.
        dimensions: Dimensions it applies to (default: the trained ones among alignment, correspondence and
            preference, the scores that should read the prompt).
        per_item: Negative prompts drawn per image and step.
        weight: Weight of the mismatch loss against the main loss.
        margin: For MOS objectives: the own prompt must score at least this much (in score units) above the
            other; pair objectives use their own pair loss with the own prompt preferred.
        hard: Fraction of negatives drawn among the training prompts that share a content word with the image's
            own prompt (when it has any); the rest are drawn uniformly.
        part_margins: For a model trained in parts (an ensemble's members, ``QualityModel.loss_parts``): the
            margin of each part, in order; replaces ``margin``, so each member trains as its own recipe would.
    """

    enabled: bool = False
    dimensions: list[str] | None = None
    per_item: int = 1
    weight: float = 1.0
    margin: float = 0.5
    hard: float = 0.0
    part_margins: list[float] | None = None

    def margin_of(self, part: int | None) -> float:
        """The margin of loss part ``part`` (None: a model of one part)."""
        if part is None or self.part_margins is None:
            return self.margin
        return self.part_margins[part]


@dataclass
class FreezeConfig:
    """Which encoder layers stay fixed (``encoder.freeze(fraction, tower)``).

    Attributes:
        fraction: Fraction of the layer groups frozen, input side first (1 = tower frozen).
        tower: ``image``, ``text`` or ``both``.
        image_fraction: Overrides ``fraction`` for the image tower when set.
        text_fraction: Overrides ``fraction`` for the text tower when set.
    """

    fraction: float = 1.0
    tower: str = "both"
    image_fraction: float | None = None
    text_fraction: float | None = None


@dataclass
class DataConfig:
    """Where the training data comes from.

    Attributes:
        dataset: Reader name for ``agiqa.data.load_dataset`` (``agiqa3k``, ``imagereward`` ...).
        root: Folder the reader reads.
        dimensions: Label dimensions to train (default: those the model and the dataset share).
        pairs_from_mos: Also train MOS data through same-prompt pairs (preference models do this always).
        splits: Stored grouped splits file (JSON written by ``agiqa.data.splits``); None = train on everything.
        split_index: Which split of ``splits`` to train on.
        val_fraction: Fraction of the training groups held out for the validation SRCC (0 = none).
        limit: Use only the first ``limit`` samples (smoke tests).
    """

    dataset: str = "agiqa3k"
    root: str = ""
    dimensions: list[str] | None = None
    pairs_from_mos: bool = False
    splits: str | None = None
    split_index: int = 0
    val_fraction: float = 0.1
    limit: int | None = None


@dataclass
class TrainSection:
    """Optimisation.

    Attributes:
        loss: ``l1``/``mae`` or ``mse`` for MOS, ``kl`` (PrefIQA) or ``pairwise_ce`` (MINT-IQA) for pairs;
            None picks the method's own (``method_loss``).
        epochs: Passes over the training data (ignored when ``steps`` is set).
        steps: Total optimiser steps (overrides ``epochs``).
        batch_size: Samples (MOS) or pairs (preference) per step.
        lr: Peak learning rate of the trained head.
        encoder_lr: Learning rate of unfrozen encoder layers (defaults to ``lr``).
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        scheduler: ``constant``, ``linear`` (decay to 0), ``cosine`` or ``cosine_with_restarts``.
        warmup_steps: Linear warm-up steps.
        warmup_ratio: Warm-up as a fraction of all steps (used when ``warmup_steps`` is 0).
        cycles: Restarts of ``cosine_with_restarts`` (TSP-MGS: every 5 of 20 epochs = 4 cycles).
        grad_clip: Clip the gradient norm (0 = off).
        freeze: Frozen encoder layers.
        cache: ``auto`` caches encoder features when the encoder is entirely frozen; ``on`` forces it
            (freezes the encoder); ``off`` encodes every step.
        cache_dir: Feature cache folder (default ``$AGIQA_CACHE_DIR`` or ``~/.cache/agiqa/features``).
        seed: Seed of everything random (initialisation, shuffling, views).
        eval_every: Validate every this many epochs.
        keep_best: Restore the weights with the best validation SRCC at the end.
        keep_best_by: What "best" means: ``srcc`` (mean validation SRCC, or pair accuracy for pair data) or
            ``srcc+swap``, that plus the mean prompt-swap share of the alignment-kind dimensions on the validation
            images (their scores under other validation prompts; ``agiqa.train.loop.validate``), for a model whose
            best-SRCC epoch comes before it reads the prompt.
        checkpoint_every: Save a resumable checkpoint every this many steps (0 = at the end of every epoch).
        tie_margin: Same-prompt MOS pairs closer than this are not used as training pairs.
        stable_preference: Stable Preference options.
        mismatch: Mismatched-prompt negatives for the prompt-dependent dimensions.
        progress: Show a progress bar.
        device: Torch device.
        num_threads: Torch CPU threads (0 = leave as is).
    """

    loss: str | None = None
    epochs: int = 10
    steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: float | None = None
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.05
    cycles: int = 1
    grad_clip: float = 0.0
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    cache: str | bool = "auto"
    cache_dir: str | None = None
    seed: int = 0
    eval_every: int = 1
    keep_best: bool = True
    keep_best_by: str = "srcc"
    checkpoint_every: int = 0
    tie_margin: float = 0.0
    stable_preference: StablePreferenceConfig = field(default_factory=StablePreferenceConfig)
    mismatch: MismatchConfig = field(default_factory=MismatchConfig)
    progress: bool = True
    device: str = "cpu"
    num_threads: int = 0


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        name: Name of the trained model (the card written beside the weights).
        model: A registered card name (``tsp-mgs-lite``), a whole card mapping (``method``, ``encoder``,
            ``dimensions``, ``method_args`` ...), or ``{card: NAME, method_args: {...}}`` to change a registered
            card (its weights are not loaded: training starts from the method's initialisation).
        data: Training data.
        train: Optimisation.
        source: File the config was read from (for error messages).
    """

    name: str
    model: dict[str, Any] | str
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=TrainSection)
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
        """Build a config from a parsed mapping; unknown keys and wrong types are errors naming ``source``."""
        config = _build(cls, {k: v for k, v in data.items() if k != "source"}, source, "")
        config.source = source
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a config file; relative ``data.root`` / ``data.splits`` stay relative to the working directory."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a training config must be a YAML mapping, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (YAML/JSON-safe) of the config, ``source`` left out."""
        out = dataclasses.asdict(self)
        out.pop("source")
        return _plain(out)

    def replace(self, **sections: dict[str, Any]) -> TrainConfig:
        """A copy with keys of sections overridden, e.g. ``replace(train={"epochs": 2}, data={"limit": 50})``."""
        data = self.to_dict()
        for section, values in sections.items():
            if isinstance(data.get(section), dict) and isinstance(values, dict):
                data[section] = _merge(data[section], values)
            else:
                data[section] = values
        return TrainConfig.from_dict(data, source=self.source)

    def validate(self) -> None:
        """Check values that the types alone do not catch."""
        t, d, where = self.train, self.data, self.source
        if t.loss is not None and t.loss not in LOSSES:
            raise ConfigError(f"{where}: train.loss={t.loss!r} is not one of {', '.join(LOSSES)}")
        if t.scheduler not in SCHEDULERS:
            raise ConfigError(f"{where}: train.scheduler={t.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        if t.keep_best_by not in KEEP_BEST_BY:
            raise ConfigError(f"{where}: train.keep_best_by={t.keep_best_by!r} is not one of {', '.join(KEEP_BEST_BY)}")
        if isinstance(t.cache, bool):  # YAML reads on/off as booleans
            t.cache = "on" if t.cache else "off"
        if t.cache not in ("auto", "on", "off"):
            raise ConfigError(f"{where}: train.cache={t.cache!r} must be 'auto', 'on' or 'off'")
        checks = {
            "train.lr": t.lr > 0,
            "train.batch_size": t.batch_size > 0,
            "train.epochs": t.epochs > 0,
            "train.steps": t.steps is None or t.steps > 0,
            "train.stable_preference.views": t.stable_preference.views >= 1,
            "train.mismatch.per_item": t.mismatch.per_item >= 1,
            "train.mismatch.weight": t.mismatch.weight >= 0,
            "train.mismatch.hard": 0.0 <= t.mismatch.hard <= 1.0,
            "train.freeze.fraction": 0.0 <= t.freeze.fraction <= 1.0,
            "data.val_fraction": 0.0 <= d.val_fraction < 1.0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"{where}: {key} has an impossible value; see docs/training.md for its range")
        if isinstance(self.model, dict):
            missing = {"method", "encoder", "dimensions"} - set(self.model)
            if missing and "card" not in self.model:
                raise ConfigError(
                    f"{where}: model lacks {sorted(missing)}; give a whole card, a registered name, or `card: NAME`"
                )


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {[prefix + k for k in unknown]}; allowed: {sorted(known)}")
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], source, prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: required key {prefix + name!r} is missing")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, source, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[-1])
    if hint is Any:
        return value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        if origin is tuple:
            if len(args) == 2 and args[1] is not Ellipsis and len(value) != 2:
                raise ConfigError(f"{source}: {key} must have exactly 2 items, got {value!r}")
            return tuple(_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
        return [_coerce(args[0], v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 3e-6 as a string
        except ValueError:
            pass
    if hint in (int, str, bool) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: {key} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
