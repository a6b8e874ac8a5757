"""Training and the train/test protocol from configs that ship with agiqa, so they run outside a checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agiqa.configs import find_config
from agiqa.data.sample import Dataset
from agiqa.data.splits import Split, shipped_splits, stored_splits
from agiqa.train.config import TrainConfig


def load_config(name_or_path: str | Path, **sections: dict[str, Any]) -> TrainConfig:
    """A training config from a file or a shipped name (``lite/tsp-mgs``), with keys of sections overridden.

    Args:
        name_or_path: A YAML file, or the name of a shipped config (``agiqa.configs.shipped_configs``).
        **sections: Overrides per section, e.g. ``data={"root": "..."}, train={"epochs": 2}`` (empty ones skipped).

    Raises:
        FileNotFoundError: Neither a file nor a shipped name (the message lists the shipped names).
        ConfigError: The config is wrong (the message names the file and the key).
    """
    config = TrainConfig.from_yaml(find_config(name_or_path))
    changes = {k: v for k, v in sections.items() if v}
    return config.replace(**changes) if changes else config


def method_config(method: str) -> Path:
    """The shipped CPU config of a method (or of a config name): ``lite/<method>``."""
    return find_config(f"lite/{method}")


def protocol_splits(dataset: Dataset, n: int, path: str | Path | None, out_dir: str | Path) -> tuple[list[Split], Path]:
    """The grouped splits a protocol runs on, and the file they come from.

    ``path`` when given (made there once if missing); else the splits that ship with agiqa for this dataset;
    else ``out_dir/splits_<dataset>.json``, made once.

    Raises:
        SplitError: The file does not fit the dataset or holds fewer than ``n`` splits.
    """
    chosen = Path(path) if path is not None else shipped_splits(dataset.name)
    if chosen is None:
        chosen = Path(out_dir) / f"splits_{dataset.name}.json"
        chosen.parent.mkdir(parents=True, exist_ok=True)
    return stored_splits(dataset, chosen, n), chosen
