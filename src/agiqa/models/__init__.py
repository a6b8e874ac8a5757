"""Methods (one file each) and the model registry.

Importing this package registers every method builder; ``registry.create_model`` builds models from cards.
"""

import agiqa.models.ip_iqa  # noqa: F401  (registers "ip-iqa")
import agiqa.models.mint_iqa  # noqa: F401  (registers "mint-iqa")
import agiqa.models.pref_iqa  # noqa: F401  (registers "prefiqa")
import agiqa.models.tsp_mgs  # noqa: F401  (registers "tsp-mgs")
import agiqa.models.zeroshot  # noqa: F401  (registers "clipscore", "clip-iqa", "tsp-mgs-zeroshot")
from agiqa.models.base import QualityModel
from agiqa.models.card import ModelCard, ScoreSpec

__all__ = ["ModelCard", "QualityModel", "ScoreSpec"]
