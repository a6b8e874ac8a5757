"""Train/test protocol over stored grouped splits, with Stable Preference's robustness report and a prompt check.

For each split: restore the freshly initialised head, train on the split's training side (a grouped part of it
held out for the validation SRCC), predict the test side and score it with ``agiqa.eval.protocol``. Encoder
features are computed once for all splits (``FeatureBank``); only the head is trained per split.

* **Table**: mean ± std over splits of SRCC, PLCC (raw and after the logistic mapping), KRCC, RMSE per
  dimension, same-prompt pairwise accuracy from the MOS, and preference accuracy where the labels are pairs.
* **Robustness** (paper 004, Table 1): the same metrics on the test images of ``robustness_splits`` (default:
  the first split) as given ("ORG") and horizontally flipped + centre-cropped at side ratios 0.97 ... 0.90,
  with the mean absolute score change.
* **Shuffled prompts**: every test image is paired with the prompt of an image from another group; a model
  whose alignment uses the prompt gives lower alignment scores to the wrong prompts.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agiqa.data.sample import Dataset
from agiqa.data.splits import Split
from agiqa.eval import metrics as M
from agiqa.eval.protocol import evaluate_predictions, metric_table
from agiqa.eval.report import aggregate, format_cell, wide, write_table
from agiqa.train.config import TrainConfig
from agiqa.train.data import hflip_center_crop, image_table, weak_view
from agiqa.train.trainer import (
    FeatureBank,
    apply_freeze,
    build_model,
    carve_validation,
    snapshot,
    train,
)

ROBUSTNESS_RATIOS = (0.97, 0.95, 0.93, 0.90)


@dataclass
class ProtocolResult:
    """Everything one protocol run measured.

    Attributes:
        name: Method / config name.
        per_split: ``{dimension: {metric: value}}`` per split.
        table: Long mean ± std table (``agiqa.eval.report.aggregate``).
        train_seconds: Training time of each split (feature caching excluded).
        feature_seconds: Time spent computing (or reading) the cached features once.
        robustness: Long table ``perturbation, dimension, metric, value`` on the robustness splits.
        shuffled: Alignment with the right vs a shuffled prompt (empty when no dimension needs the prompt).
        val_history: Validation history of each split.
    """

    name: str
    per_split: list[dict[str, dict[str, float]]] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    train_seconds: list[float] = field(default_factory=list)
    feature_seconds: float = 0.0
    robustness: pd.DataFrame = field(default_factory=pd.DataFrame)
    shuffled: dict[str, float] = field(default_factory=dict)
    val_history: list[list[dict[str, float]]] = field(default_factory=list)

    def markdown(self, digits: int = 4) -> str:
        """The mean ± std table as markdown (dimensions as rows)."""
        return to_markdown(wide(self.table, digits))


def to_markdown(frame: pd.DataFrame) -> str:
    """A small markdown table (no ``tabulate`` dependency)."""
    cols = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def _predictions(bank: FeatureBank, rows: Sequence[int], view: int = 0) -> pd.DataFrame:
    preds = bank.predict(rows, view=view)
    return pd.DataFrame({"image": [bank.table.ids[r] for r in rows], **preds})


def _evaluate(frame: pd.DataFrame, test: Dataset) -> dict[str, dict[str, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.MetricWarning)
        dims = [c for c in frame.columns if c != "image" and (c in test.dimensions or test.pairs)]
        return metric_table(evaluate_predictions(frame, test, dims))


@torch.no_grad()
def shuffled_prompt_check(bank: FeatureBank, rows: Sequence[int], seed: int = 0) -> dict[str, float]:
    """Scores of test images with their own prompt vs the prompt of an image from another group.

    Returns:
        Per prompt-dependent dimension: mean score with the right and with the wrong prompt, their difference,
        the share of images whose score fell, and the SRCC of the wrong-prompt scores against the MOS.
    """
    model, table = bank.model, bank.table
    dims = [d.name for d in model.dimensions if d.needs_prompt]
    if not dims or not bank.cached or len({table.groups[r] for r in rows}) < 2:
        return {}
    rng = np.random.default_rng(seed)
    rows = list(rows)
    donors = []
    for r in rows:
        others = [o for o in rows if table.groups[o] != table.groups[r]]
        donors.append(others[rng.integers(len(others))])
    model.eval()
    rows_t = torch.as_tensor(rows)
    right = bank.predict(rows)
    feats = bank.batch(rows_t)
    for k, v in bank.text.items():
        feats[k] = v[bank.prompt_row[torch.as_tensor(donors, device=bank.prompt_row.device)]]
    wrong = {d: s.float().cpu().numpy() for d, s in model.forward_head(feats).items()}
    out: dict[str, float] = {}
    for d in dims:
        out[f"{d}_mean_right_prompt"] = float(np.mean(right[d]))
        out[f"{d}_mean_shuffled_prompt"] = float(np.mean(wrong[d]))
        out[f"{d}_drop"] = float(np.mean(right[d] - wrong[d]))
        out[f"{d}_share_lower"] = float(np.mean(wrong[d] < right[d]))
        if d in table.labels:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", M.MetricWarning)
                out[f"{d}_srcc_shuffled"] = float(M.srcc(wrong[d], table.labels[d][rows]))
    return out


def run_protocol(
    config: TrainConfig,
    dataset: Dataset,
    splits: Sequence[Split],
    robustness_ratios: Sequence[float] = ROBUSTNESS_RATIOS,
    robustness_splits: Sequence[int] = (0,),
    progress: bool = True,
) -> ProtocolResult:
    """Train and test ``config`` on every split (see module docstring).

    Args:
        config: Training config (its ``data.splits`` / ``split_index`` are ignored; ``splits`` rule).
        dataset: The full dataset the splits were made from.
        splits: Stored grouped splits (``agiqa.data.splits.load_splits``).
        robustness_ratios: Centre-crop side ratios of the robustness report (empty: no report).
        robustness_splits: Splits whose test side gets the robustness report.
        progress: Print one line per split.
    """
    result = ProtocolResult(config.name)
    model = build_model(config)
    cached = apply_freeze(model, config)
    initial = snapshot(model)
    table = image_table(dataset)
    row = table.row
    t0 = time.perf_counter()
    sp = config.train.stable_preference
    views: list[tuple[str, Any]] = []
    if sp.enabled:
        views += [
            (f"weak{i}-s{sp.view_seed}-a{sp.crop_area[0]}-{sp.crop_area[1]}", weak_view(i, sp.crop_area, sp.view_seed))
            for i in range(sp.views)
        ]
    bank = FeatureBank(model, table, cached, config.train.cache_dir, views, progress=config.train.progress)
    result.feature_seconds = time.perf_counter() - t0
    robust_rows: dict[int, list[int]] = {}
    for i, split in enumerate(splits):
        train_dataset, test = split.apply(dataset)
        rows = [row[x] for x in split.train if x in row]
        fit_rows = carve_validation(table, rows, config.data.val_fraction, config.train.seed + i)
        model.load_state_dict(initial, strict=False)
        torch.manual_seed(config.train.seed + i)
        res = train(config, dataset=train_dataset, rows=fit_rows, bank=bank)
        result.train_seconds.append(res.seconds)
        result.val_history.append(res.history)
        test_rows = [row[x] for x in split.test if x in row]
        scores = _evaluate(_predictions(bank, test_rows), test)
        result.per_split.append(scores)
        if i in robustness_splits and robustness_ratios:
            robust_rows[i] = test_rows
            result.robustness = pd.concat([result.robustness, _robustness(bank, test_rows, test, robustness_ratios, i)])
        if i == 0:
            result.shuffled = shuffled_prompt_check(bank, test_rows, seed=config.train.seed)
        if progress:
            line = ", ".join(f"{d} SRCC {v.get('srcc', math.nan):.4f}" for d, v in scores.items())
            print(f"[{config.name}] split {i + 1}/{len(splits)}: {line} ({res.seconds:.1f} s)", flush=True)
    result.table = aggregate(result.per_split)
    return result


def _robustness(bank: FeatureBank, rows: list[int], test: Dataset, ratios: Sequence[float], split: int) -> pd.DataFrame:
    base = _predictions(bank, rows)
    records = []
    for name, frame in [("ORG", base), *[(f"HF&CC({r:.2f})", _view_predictions(bank, rows, r)) for r in ratios]]:
        for dim, metrics in _evaluate(frame, test).items():
            for metric in ("srcc", "plcc", "krcc", "pairwise_acc", "preference_acc"):
                if metric in metrics:
                    records.append((split, name, dim, metric, metrics[metric]))
            records.append((split, name, dim, "mean_abs_change", float(np.mean(np.abs(frame[dim] - base[dim])))))
    return pd.DataFrame(records, columns=["split", "perturbation", "dimension", "metric", "value"])


def _view_predictions(bank: FeatureBank, rows: list[int], ratio: float) -> pd.DataFrame:
    """Predictions on flipped + centre-cropped copies (features cached per view, like the originals)."""
    from agiqa.train.cache import cached_image_features

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


def robustness_markdown(
    frame: pd.DataFrame, metrics: Sequence[str] = ("srcc", "pairwise_acc", "mean_abs_change")
) -> str:
    """Perturbations as columns, (dimension, metric) as rows; changes against ORG in brackets."""
    if frame.empty:
        return "(no robustness report)"
    mean = frame.groupby(["dimension", "metric", "perturbation"], sort=False)["value"].mean().unstack("perturbation")
    order = list(dict.fromkeys(frame["perturbation"]))
    mean = mean[order]
    lines = ["| dimension | metric | " + " | ".join(order) + " |", "|---|---|" + "---|" * len(order)]
    for (dim, metric), values in mean.iterrows():
        if metric not in metrics:
            continue
        org = values["ORG"]
        cells = [
            f"{values[c]:.4f}" + ("" if c == "ORG" or metric == "mean_abs_change" else f" ({values[c] - org:+.4f})")
            for c in order
        ]
        lines.append(f"| {dim} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_protocol(
    result: ProtocolResult, out_dir: str | Path, stem: str, extra: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``STEM.csv``/``STEM.json`` (table, per split, times, robustness, shuffled prompts) and ``STEM.md``."""
    doc = {
        "name": result.name,
        "per_split": result.per_split,
        "train_seconds": result.train_seconds,
        "feature_seconds": result.feature_seconds,
        "robustness": result.robustness.to_dict(orient="records"),
        "shuffled_prompts": result.shuffled,
        **(extra or {}),
    }
    csv_path, json_path = write_table(result.table, out_dir, stem, doc)
    secs = result.train_seconds
    spread = float(np.std(secs, ddof=1)) if len(secs) > 1 else math.nan
    md = [
        f"# {result.name}",
        "",
        result.markdown(),
        "",
        f"Training time per split: {format_cell(float(np.mean(secs)), spread, 1)} s "
        f"over {len(secs)} splits (features: {result.feature_seconds:.1f} s once).",
        "",
    ]
    if not result.robustness.empty:
        md += ["## Robustness (horizontal flip + centre crop)", "", robustness_markdown(result.robustness), ""]
    if result.shuffled:
        md += ["## Shuffled prompts", "", "| measure | value |", "|---|---|"]
        md += [f"| {k} | {v:.4f} |" for k, v in result.shuffled.items()] + [""]
    md_path = Path(out_dir) / f"{stem}.md"
    md_path.write_text("\n".join(md))
    return json_path, md_path


def stored_splits(dataset: Dataset, path: str | Path, n: int = 10, seed: int = 0) -> list[Split]:
    """The splits stored at ``path`` (made with ``make_splits`` and written there on first use).

    Raises:
        SplitError: When the stored file does not fit the dataset or holds fewer than ``n`` splits.
    """
    from agiqa.data.splits import SplitError, load_splits, make_splits, save_splits

    path = Path(path)
    if not path.is_file():
        save_splits(make_splits(dataset, n=n, seed=seed), path)
    splits = load_splits(path, dataset)
    if len(splits) < n:
        raise SplitError(f"{path}: holds {len(splits)} splits, {n} asked; delete it to make {n} afresh")
    return splits[:n]
