"""Whether a model is being evaluated on images it was trained on: ``training_overlap``.

A score table written by ``agiqa score`` names its model in a ``model`` column (a registered name or a model
folder); the model's training-set record (``agiqa.models.training_set``) lists the image ids it was trained and
validated on. Figures over those images measure how well the model fits its own training data, not how well it
scores new images, so they are flagged. Without a ``model`` column there is nothing to check.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

MODEL_COLUMN = "model"


def training_overlap(pred: pd.DataFrame, dataset_name: str, image_ids: Iterable[str]) -> list[str]:
    """Warnings for every model named in ``pred`` that was trained or validated on some of ``image_ids``.

    Args:
        pred: A predictions table; its ``model`` column (when present) names the model(s) that wrote it.
        dataset_name: The dataset being evaluated (records of other datasets cannot overlap).
        image_ids: Ids of the images the figures are computed on.

    Returns:
        One warning per model that saw some of the images, and one per model whose training set cannot be read.
    """
    if MODEL_COLUMN not in pred.columns:
        return []
    from agiqa.models.registry import resolve_card
    from agiqa.models.training_set import load_training_set

    ids = set(map(str, image_ids))
    out = []
    for reference in pred[MODEL_COLUMN].dropna().astype(str).unique():
        try:
            record = load_training_set(resolve_card(reference))
        except (KeyError, FileNotFoundError, ValueError) as err:
            out.append(f"model {reference}: its training set could not be checked ({err.args[0] if err.args else err})")
            continue
        if record is None or record.dataset != dataset_name:
            continue
        n_train, n_val = record.overlap(ids)
        if n_train or n_val:
            seen = f"trained on {n_train}" + (f" and validated on {n_val}" if n_val else "")
            out.append(
                f"model {reference} was {seen} of the {len(ids)} images evaluated here ({record.describe()}): these "
                "figures are in-sample, not a test on unseen images; evaluate on images it was not trained on"
            )
    return out
