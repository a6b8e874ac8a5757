"""Checks the protocol runs on a trained model's test images, besides the metrics.

* **Robustness** (paper 004, Table 1): the metrics on the test images as given ("ORG") and horizontally flipped
  + centre-cropped at side ratios 0.97 ... 0.90, with the mean absolute score change, also in units of the
  original scores' standard deviation (``abs_change_per_std``), which compares models whose scores have
  different scales (a pairwise loss fixes no scale).
* **Shuffled prompts**: every test image is paired with the prompt of a random image from another group; a model
  whose alignment reads the prompt gives lower alignment scores to the wrong prompts. The protocol runs it on
  every split and reports the share of images whose score fell as the metric ``prompt_swap_share``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from agiqa.data.sample import Dataset
from agiqa.eval import metrics as M
from agiqa.eval.evaluate import evaluate_predictions, metric_table
from agiqa.models.base import QualityModel
from agiqa.train.augment import hflip_center_crop
from agiqa.train.cache import cached_image_features
from agiqa.train.features import FeatureBank
from agiqa.train.mismatch import prompt_swap_share

ROBUSTNESS_RATIOS = (0.97, 0.95, 0.93, 0.90)


def split_metrics(frame: pd.DataFrame, test: Dataset) -> dict[str, dict[str, float]]:
    """``{dimension: {metric: value}}`` of predictions on a split's test side (metric warnings silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        dims = [c for c in frame.columns if c != "image" and (c in test.dimensions or test.pairs)]
        return metric_table(evaluate_predictions(frame, test, dims))


def swap_donors(groups: Sequence[str], rows: Sequence[int], seed: int) -> list[int]:
    """For each of ``rows``, a random one of ``rows`` from another group (``groups``: the group of every table row):
    the images whose prompts the shuffled-prompt check pairs them with."""
    rng = np.random.default_rng(seed)
    rows = list(rows)
    own = np.array([groups[r] for r in rows])
    return [rows[rng.choice(np.flatnonzero(own != g))] for g in own]


def donor_predictions(
    bank: FeatureBank, rows: Sequence[int], seed: int, model: QualityModel | None = None
) -> dict[str, np.ndarray]:
    """Predictions for ``rows`` with each image paired with the prompt of its ``swap_donors`` image (of the bank's
    model, or of ``model``, one of its parts)."""
    donors = swap_donors(bank.table.groups, rows, seed)
    return bank.predict(rows, prompt_rows=bank.prompt_row[torch.as_tensor(donors)].tolist(), model=model)


def shuffled_prompt_check(bank: FeatureBank, rows: Sequence[int], seed: int = 0) -> dict[str, float]:
    """Scores of test images with their own prompt vs the prompt of a random image from another group.

    Returns:
        Per prompt-dependent dimension: mean score with the right and with the wrong prompt, their difference
        (``drop``), the share of images whose score fell (``share_lower``, 0.5 is a coin toss), and the SRCC of
        the wrong-prompt scores against the MOS.
    """
    table = bank.table
    dims = [d.name for d in bank.model.dimensions if d.needs_prompt]
    if not dims or len({table.groups[r] for r in rows}) < 2:
        return {}
    rows = list(rows)
    right = bank.predict(rows)
    wrong = donor_predictions(bank, rows, seed)
    out: dict[str, float] = {}
    for d in dims:
        out[f"{d}_mean_right_prompt"] = float(np.mean(right[d]))
        out[f"{d}_mean_shuffled_prompt"] = float(np.mean(wrong[d]))
        out[f"{d}_drop"] = float(np.mean(right[d] - wrong[d]))
        out[f"{d}_share_lower"] = prompt_swap_share(right[d], wrong[d])
        if d in table.labels:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", M.MetricWarning)
                out[f"{d}_srcc_shuffled"] = float(M.srcc(wrong[d], table.labels[d][rows]))
    return out


def robustness_table(
    bank: FeatureBank, rows: list[int], test: Dataset, ratios: Sequence[float], split: int
) -> pd.DataFrame:
    """Long table ``split, perturbation, dimension, metric, value`` of the test rows, original and perturbed."""
    base = bank.prediction_frame(rows)
    records = []
    for name, frame in [("ORG", base), *[(f"HF&CC({r:.2f})", _view_predictions(bank, rows, r)) for r in ratios]]:
        for dim, metrics in split_metrics(frame, test).items():
            for metric in ("srcc", "plcc", "krcc", "pairwise_acc", "preference_acc"):
                if metric in metrics:
                    records.append((split, name, dim, metric, metrics[metric]))
            change = float(np.mean(np.abs(frame[dim] - base[dim])))
            records.append((split, name, dim, "mean_abs_change", change))
            spread = float(np.std(base[dim]))
            records.append((split, name, dim, "abs_change_per_std", change / spread if spread > 0 else math.nan))
    return pd.DataFrame(records, columns=["split", "perturbation", "dimension", "metric", "value"])


def _view_predictions(bank: FeatureBank, rows: list[int], ratio: float) -> pd.DataFrame:
    """Predictions on flipped + centre-cropped copies (features cached per view, like the originals)."""
    view = f"hflip+cc{ratio:.2f}"
    sub_images = [bank.table.images[r] for r in rows]
    if bank.cached:
        feats, _ = cached_image_features(
            bank.model, sub_images, bank.cache_dir, view=view, transform=hflip_center_crop(ratio)
        )
        device = bank.prompt_row.device
        prompt_rows = bank.prompt_row[torch.as_tensor(rows, device=device)]
        feats = {k: v.to(device) for k, v in feats.items()}
        bank.model.eval()
        with torch.no_grad():
            out = bank.model.forward_head({**feats, **{k: v[prompt_rows] for k, v in bank.text.items()}})
        preds = {d: s.float().cpu().numpy() for d, s in out.items()}
    else:
        bank.views.append((view, hflip_center_crop(ratio)))
        preds = bank.predict(rows, view=len(bank.views))
        bank.views.pop()
    return pd.DataFrame({"image": [bank.table.ids[r] for r in rows], **preds})
