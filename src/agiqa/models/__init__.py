"""Methods (one module each, found by ``agiqa.models.registry.discover``), their contract and the model registry."""

from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec

__all__ = ["ModelCard", "QualityModel", "ScoreSpec"]
