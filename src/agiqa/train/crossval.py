"""Out-of-fold predictions: grouped k-fold cross-validation over prompts, every image predicted by a model that
never saw its prompt.

One ``prepare`` computes the features of every image once (the feature cache makes later runs cheap); for each
fold the freshly initialised model is trained on the other folds (a grouped part of them held out for validation,
as ``agiqa train`` does) and predicts the fold's images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from agiqa.data.sample import Dataset
from agiqa.data.splits import Split
from agiqa.train.checkpoint import snapshot
from agiqa.train.config import TrainConfig
from agiqa.train.loop import train
from agiqa.train.selection import carve_validation
from agiqa.train.setup import prepare
from agiqa.train.table import ImageTable


def grouped_folds(table: ImageTable, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold (0 .. n_folds-1) of every row: whole groups (prompts) dealt round-robin in a seeded random order.

    Raises:
        ValueError: Fewer groups than folds.
    """
    groups = sorted(set(table.groups))
    if n_folds < 2 or len(groups) < n_folds:
        raise ValueError(f"{n_folds} folds need at least 2 folds and as many groups; the data has {len(groups)}")
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = {groups[j]: k % n_folds for k, j in enumerate(order)}
    return np.array([fold_of[g] for g in table.groups], dtype=np.int64)


def cross_val_predict(
    config: TrainConfig, dataset: Dataset, n_folds: int = 5, seed: int = 0, progress: bool = False
) -> pd.DataFrame:
    """Out-of-fold predictions of ``config``'s model on every image of ``dataset``.

    Args:
        config: The training recipe (its ``data`` section names the validation share; ``data.splits`` is ignored).
        dataset: All the data.
        n_folds: Folds over the groups (prompts).
        seed: Seed of the assignment of groups to folds.
        progress: Print one line per fold.

    Returns:
        One row per image in the dataset's order: ``image`` (id), ``fold``, one column per dimension.
    """
    setup = prepare(config, dataset)
    table, bank = setup.table, setup.bank
    folds = grouped_folds(table, n_folds, seed)
    initial = snapshot(setup.model)
    frames = []
    for k in range(n_folds):
        test_rows = np.flatnonzero(folds == k).tolist()
        train_rows = np.flatnonzero(folds != k).tolist()
        split = Split(dataset.name, seed, k, 1 / n_folds, tuple(table.ids[r] for r in train_rows), ())
        train_side = split.apply(dataset)[0]
        setup.model.load_state_dict(initial, strict=False)
        torch.manual_seed(config.train.seed + k)
        fit_rows = carve_validation(table, train_rows, config.data.val_fraction, config.train.seed + k)
        result = train(config, setup=dataclasses.replace(setup, dataset=train_side), rows=fit_rows)
        frames.append(bank.prediction_frame(test_rows).assign(fold=k, row=test_rows))
        if progress:
            print(f"fold {k + 1}/{n_folds}: {len(test_rows)} images predicted, best validation {result.best_val}")
    out = pd.concat(frames).sort_values("row").drop(columns="row").reset_index(drop=True)
    return out[["image", "fold", *[c for c in out.columns if c not in ("image", "fold")]]]
