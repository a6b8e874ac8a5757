"""Methods (one file each) and the model registry.

Importing this package registers every method builder; ``registry.create_model`` builds models from cards.
"""

from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec

__all__ = ["ModelCard", "QualityModel", "ScoreSpec"]
