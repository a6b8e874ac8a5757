"""Training: configs, the feature cache, the loop and the train/test protocol.

``agiqa.train.train(TrainConfig.from_yaml("configs/lite/default.yaml"))`` is ``agiqa train CONFIG.yaml``.
"""

from agiqa.train.config import ConfigError, TrainConfig
from agiqa.train.trainer import TrainResult, build_model, train

__all__ = ["ConfigError", "TrainConfig", "TrainResult", "build_model", "train"]
