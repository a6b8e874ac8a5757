"""Data: the sample model, benchmark readers and their registry, and MOS from raw ratings.

The built-in readers are imported on first use of ``load_dataset`` / ``list_datasets`` / ``get_dataset``, so
that ``import agiqa.data.images`` stays light.
"""

from agiqa.data.datasets import (
    DATASETS,
    DatasetError,
    DatasetInfo,
    get_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)
from agiqa.data.sample import Dataset, PreferencePair, Problem, Sample

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "PreferencePair",
    "Problem",
    "Sample",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
