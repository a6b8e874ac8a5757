"""Train/test protocol over stored grouped splits, and the files it writes.

One ``prepare`` (``agiqa.train.setup``, shared with ``train``) builds the model and computes the encoder features
once for all splits. For each split: restore the freshly initialised head, train on the split's training side (a
grouped part of it held out for the validation SRCC), predict the test side and score it with
``agiqa.eval.evaluate``.

* **Table**: mean ± std over splits of SRCC, PLCC (raw and after the logistic mapping), KRCC, RMSE per
  dimension, same-prompt pairwise accuracy from the MOS, and preference accuracy where the labels are pairs.
* **Probes** (``agiqa.train.probes``): the robustness report on the test images of ``robustness_splits``
  (default: the first split) and, on every split, the shuffled-prompt check: ``prompt_swap_share`` on the test
  side (new prompts), ``prompt_swap_share_seen`` on the rows trained on (their prompts swapped among themselves).
  A model that learnt to read the prompt scores both well above 0.5; one that memorised its training pairs only
  the second.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agiqa.data.sample import Dataset
from agiqa.data.splits import Split
from agiqa.eval.report import aggregate, format_cell, markdown_table, wide, write_report
from agiqa.train.checkpoint import snapshot
from agiqa.train.config import TrainConfig
from agiqa.train.loop import TrainResult, train
from agiqa.train.probes import ROBUSTNESS_RATIOS, robustness_table, shuffled_prompt_check, split_metrics
from agiqa.train.selection import carve_validation
from agiqa.train.setup import TrainSetup, prepare


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
        return markdown_table(wide(self.table, digits))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProtocolResult:
        """The result ``write_protocol`` saved as JSON (splits saved before ``val_history`` was get an empty one)."""
        per_split = list(doc["per_split"])
        return cls(
            doc["name"],
            per_split=per_split,
            table=aggregate(per_split) if per_split else pd.DataFrame(),
            train_seconds=list(doc["train_seconds"]),
            feature_seconds=float(doc["feature_seconds"]),
            robustness=pd.DataFrame(doc.get("robustness") or []),
            shuffled=dict(doc.get("shuffled_prompts") or {}),
            val_history=list(doc.get("val_history") or [[] for _ in per_split]),
        )


def train_on_split(
    config: TrainConfig, setup: TrainSetup, dataset: Dataset, split: Split, index: int, initial: dict[str, Any]
) -> tuple[TrainResult, tuple[list[int], list[int]], list[int], Dataset]:
    """Train ``setup``'s model on split ``index``'s training side as the protocol does: from the ``initial`` head
    (``checkpoint.snapshot``), seeded by ``config.train.seed + index``, a grouped validation part held out.

    Returns:
        The training result, the ``(fit, validation)`` rows, the test side's table rows and its dataset.
    """
    row = setup.table.row
    train_dataset, test = split.apply(dataset)
    rows = [row[x] for x in split.train if x in row]
    fit_rows = carve_validation(setup.table, rows, config.data.val_fraction, config.train.seed + index)
    setup.model.load_state_dict(initial, strict=False)
    torch.manual_seed(config.train.seed + index)
    res = train(config, setup=dataclasses.replace(setup, dataset=train_dataset), rows=fit_rows)
    return res, fit_rows, [row[x] for x in split.test if x in row], test


def run_protocol(
    config: TrainConfig,
    dataset: Dataset,
    splits: Sequence[Split],
    robustness_ratios: Sequence[float] = ROBUSTNESS_RATIOS,
    robustness_splits: Sequence[int] = (0,),
    progress: bool = True,
    resume: ProtocolResult | None = None,
    on_split: Callable[[ProtocolResult], None] | None = None,
) -> ProtocolResult:
    """Train and test ``config`` on every split (see module docstring).

    Args:
        config: Training config (its ``data.splits`` / ``split_index`` are ignored; ``splits`` rule).
        dataset: The full dataset the splits were made from.
        splits: Stored grouped splits (``agiqa.data.splits.load_splits``).
        robustness_ratios: Centre-crop side ratios of the robustness report (empty: no report).
        robustness_splits: Splits whose test side gets the robustness report.
        progress: Print one line per split.
        resume: The result of an earlier run of the same config on the first splits: its splits are kept and only
            the ones after them run. Each split starts from the same initial head and seed as in a full run, so a
            resumed run measures what an uninterrupted one would.
        on_split: Called with the result so far after each split (e.g. to save it).
    """
    done = len(resume.per_split) if resume is not None else 0
    if resume is not None and (resume.name != config.name or done > len(splits)):
        raise ValueError(
            f"protocol: cannot resume {resume.name!r} ({done} splits) as {config.name!r} on {len(splits)} splits; "
            "resume a run of the same config on no more splits than asked"
        )
    result = ProtocolResult(config.name)
    if resume is not None:
        result = dataclasses.replace(
            resume,
            per_split=list(resume.per_split),
            train_seconds=list(resume.train_seconds),
            val_history=list(resume.val_history),
        )
    setup = prepare(config, dataset)
    result.feature_seconds = setup.feature_seconds
    initial = snapshot(setup.model)
    bank = setup.bank
    for i, split in enumerate(splits[done:], start=done):
        res, fit_rows, test_rows, test = train_on_split(config, setup, dataset, split, i, initial)
        result.train_seconds.append(res.seconds)
        result.val_history.append(res.history)
        scores = split_metrics(bank.prediction_frame(test_rows), test)
        shuffled = shuffled_prompt_check(bank, test_rows, seed=config.train.seed + i)
        seen = shuffled_prompt_check(bank, fit_rows[0], seed=config.train.seed + i)
        for dim in scores:
            if f"{dim}_share_lower" in shuffled:
                scores[dim]["prompt_swap_share"] = shuffled[f"{dim}_share_lower"]
                scores[dim]["prompt_swap_drop"] = shuffled[f"{dim}_drop"]
                scores[dim]["prompt_swap_share_seen"] = seen[f"{dim}_share_lower"]
        result.per_split.append(scores)
        if i in robustness_splits and robustness_ratios:
            robustness = robustness_table(bank, test_rows, test, robustness_ratios, i)
            result.robustness = pd.concat([result.robustness, robustness])
        if i == 0:
            result.shuffled = shuffled
        if progress:
            line = ", ".join(f"{d} SRCC {v.get('srcc', math.nan):.4f}" for d, v in scores.items())
            print(f"[{config.name}] split {i + 1}/{len(splits)}: {line} ({res.seconds:.1f} s)", flush=True)
        if on_split is not None:
            result.table = aggregate(result.per_split)
            on_split(result)
    result.table = aggregate(result.per_split)
    return result


def add_robustness(
    config: TrainConfig,
    dataset: Dataset,
    splits: Sequence[Split],
    earlier: ProtocolResult,
    ratios: Sequence[float] = ROBUSTNESS_RATIOS,
    tolerance: float = 1e-3,
) -> ProtocolResult:
    """``earlier`` with the robustness report of its first split, for a run made without one.

    Split 0 is trained again as ``run_protocol`` trains it; the report is kept only when that split's SRCCs
    reproduce the ones ``earlier`` holds within ``tolerance``, so that it describes the models of the table.

    Raises:
        ValueError: ``earlier`` is another config's run, or split 0 does not reproduce (e.g. the run predates a
            change of the code): rerun the method in full, with the robustness report.
    """
    if earlier.name != config.name or not earlier.per_split:
        raise ValueError(
            f"protocol: cannot add robustness to {earlier.name!r} ({len(earlier.per_split)} splits) "
            f"from config {config.name!r}; pass a saved run of the same config"
        )
    again = run_protocol(config, dataset, splits[:1], ratios, robustness_splits=(0,), progress=False)
    for dim, metrics in earlier.per_split[0].items():
        old, new = metrics.get("srcc", math.nan), again.per_split[0].get(dim, {}).get("srcc", math.nan)
        if not abs(old - new) <= tolerance:
            raise ValueError(
                f"protocol: split 0 of {config.name!r} does not reproduce ({dim} SRCC {new:.4f} now, {old:.4f} saved); "
                "the saved run predates the present code: rerun the method in full with the robustness report"
            )
    return dataclasses.replace(earlier, robustness=again.robustness)


def robustness_markdown(
    frame: pd.DataFrame, metrics: Sequence[str] = ("srcc", "pairwise_acc", "mean_abs_change", "abs_change_per_std")
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
            f"{values[c]:.4f}" + ("" if c == "ORG" or "change" in metric else f" ({values[c] - org:+.4f})")
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
        "val_history": result.val_history,
        **(extra or {}),
    }
    csv_path, json_path = write_report(result.table, out_dir, stem, doc)
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
