"""Training: configs, the shared setup, the feature cache, the loop and the train/test protocol.

``agiqa.train.train(TrainConfig.from_yaml(find_config("lite/default")))`` is ``agiqa train lite/default``.
"""

from agiqa.train.config import ConfigError, TrainConfig
from agiqa.train.loop import TrainingDiverged, TrainResult, train
from agiqa.train.setup import TrainSetup, build_model, prepare

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "TrainSetup",
    "TrainingDiverged",
    "build_model",
    "prepare",
    "train",
]
