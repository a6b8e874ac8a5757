"""Typed records that describe a model: its score dimensions and the checkpoint it loads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agiqa.models.reference import Reference


@dataclass(frozen=True)
class ScoreSpec:
    """What one output of a model means.

    Attributes:
        name: ``quality``, ``alignment``, ``authenticity``, ``correspondence`` or ``preference``.
        low: Lowest value the model gives (nominal).
        high: Highest value the model gives (nominal).
        higher_is_better: Direction of the score.
        needs_prompt: Whether the score depends on the prompt (alignment does; quality may not).
        description: One line for ``agiqa models``.
    """

    name: str
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool = True
    needs_prompt: bool = False
    description: str = ""


SPEED_KEYS = {"images_per_s", "how", "source"}


@dataclass(frozen=True)
class ModelCard:
    """A registered model: architecture as data plus the provenance of its weights.

    Attributes:
        name: Registry name (``agiqa-lite``, ``tsp-mgs-clip-b32`` ...).
        method: Key of the method builder (``tsp-mgs``, ``prefiqa``, ``mint-iqa``, ``ip-iqa``, ``clipscore`` ...).
        encoder: Encoder spec given to ``agiqa.encoders.create_encoder``.
        encoder_args: Keyword arguments of the encoder builder (e.g. ``{image_size: 384}`` for ``lite``).
        dimensions: The scores the model outputs.
        method_args: Keyword arguments of the method builder.
        weights: Safetensors file of the trained heads: a name inside the package's ``weights/`` folder, a path
            relative to the card's folder, or an absolute path. None when the heads are untrained (zero-shot methods
            need none).
        needs_training: Whether the model is meaningless without trained weights. None takes the method's own
            declaration (``QualityModel.needs_training``: True, False for the zero-shot methods); a card sets it
            when its encoder decides (a zero-shot method over an encoder whose joint space is untrained).
        trained_on: Data the weights were trained on, for ``agiqa models``.
        metrics: Measured protocol figures (e.g. ``{"quality_srcc": 0.8}``), for ``agiqa models``.
        description: One paragraph for ``agiqa models``.
        licence: Licence of the weights.
        reference: Quantiles of the model's scores on its training images (``agiqa.models.reference``), which
            turn scores into percentiles; None when the card has none.
        speed: Measured scoring speed, for ``agiqa models``: ``{images_per_s: float, how: str, source: str}`` (how
            and where it was measured, the benchmark result it was copied from); None when not measured.
        source: Where the card came from (package config file or a user's folder).
    """

    name: str
    method: str
    encoder: str
    dimensions: tuple[ScoreSpec, ...]
    encoder_args: dict[str, Any] = field(default_factory=dict)
    method_args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    needs_training: bool | None = None
    trained_on: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    licence: str = "Apache-2.0"
    reference: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> ModelCard:
        """Build a card from a parsed YAML/JSON mapping; unknown keys are an error naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{source}: unknown model-card keys {sorted(unknown)}; allowed: {sorted(known)}")
        missing = {"name", "method", "encoder", "dimensions"} - set(data)
        if missing:
            raise ValueError(f"{source}: model card lacks required keys {sorted(missing)}")
        dims = tuple(ScoreSpec(**d) if isinstance(d, dict) else d for d in data["dimensions"])
        if data.get("reference") is not None:
            where = source or str(data["name"])
            extra = set(Reference.from_card_value(data["reference"], where).dimensions) - {d.name for d in dims}
            if extra:
                raise ValueError(f"{where}: reference.quantiles has dimensions {sorted(extra)} the model lacks")
        speed = data.get("speed")
        if speed is not None and not (
            isinstance(speed, dict) and isinstance(speed.get("images_per_s"), int | float) and set(speed) <= SPEED_KEYS
        ):
            raise ValueError(
                f"{source or data['name']}: speed is {speed!r}; give a mapping with a number `images_per_s` and "
                f"optional {sorted(SPEED_KEYS - {'images_per_s'})}, or leave it out"
            )
        return cls(**{**data, "dimensions": dims, "source": source or data.get("source", "")})

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelCard:
        """Read a card from a YAML file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:  # safe_load refuses python tags: no code runs
            raise ValueError(f"{path}: not a valid model card (YAML): {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a model card must be a YAML mapping, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping suitable for YAML/JSON (``source`` left out)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if f.name == "dimensions":
                value = [vars(d).copy() for d in value]
            out[f.name] = value
        return out

    @property
    def dimension_names(self) -> tuple[str, ...]:
        """Names of the scores, in output order."""
        return tuple(d.name for d in self.dimensions)
