"""Evaluating predictions: match a predictions table to a dataset's images and score it against the labels, on
all of the dataset (cross-dataset: trained elsewhere, tested here) or on the test sides of stored splits.

A predictions table has an ``image`` column and one numeric column per score dimension; other columns (the
``prompt``, ``model``, ``error`` and ``warning`` of an ``agiqa score`` table, copied input columns) are ignored.
When it names its model (``model`` column), a model evaluated on images it was trained on is warned about
(``agiqa.eval.in_sample``). Rows are matched to samples by image id first, then by path (absolute, or relative to
the dataset root), then by file name when that name is unique in the dataset; unmatched, ambiguous and duplicated
rows are reported, never guessed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from agiqa.data.sample import Dataset
from agiqa.data.splits import Split
from agiqa.eval import metrics as M
from agiqa.eval.bootstrap import bootstrap_ci
from agiqa.eval.in_sample import MODEL_COLUMN, training_overlap

IMAGE_COLUMN = "image"
TEXT_COLUMNS = ("prompt", MODEL_COLUMN, "error", "warning")
"""Columns of an ``agiqa score`` table that are never scores."""
CI_METRICS: dict[str, Callable[..., float]] = {
    "srcc": M.srcc,
    "krcc": M.krcc,
    "plcc": M.plcc,
    "pairwise_acc": M.pairwise_accuracy,
}


class EvaluationError(ValueError):
    """Predictions that cannot be evaluated against a dataset (missing column, unknown dimension ...)."""


def _norm(text: str) -> str:
    return str(text).strip().replace("\\", "/")


@dataclass
class MatchedPredictions:
    """Predictions matched to a dataset's image ids.

    Attributes:
        frame: One row per matched image, indexed by image id, one column per prediction dimension.
        n_rows: Rows in the predictions table.
        unmatched: ``image`` values that match no image of the dataset.
        ambiguous: ``image`` values whose file name matches several images (give the relative path instead).
        duplicates: Image ids predicted more than once (the first row is kept).
        by_name: Rows matched only by file name.
    """

    frame: pd.DataFrame
    n_rows: int
    unmatched: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    by_name: int = 0

    @property
    def n_matched(self) -> int:
        """Number of distinct dataset images with a prediction."""
        return len(self.frame)

    def report(self) -> dict[str, Any]:
        """How the predictions matched: counts and the rows that did not match cleanly."""
        return {
            "n_predictions": self.n_rows,
            "n_matched": self.n_matched,
            "matched_by_name": self.by_name,
            "unmatched": self.unmatched,
            "ambiguous": self.ambiguous,
            "duplicates": self.duplicates,
        }


def _lookup(dataset: Dataset) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Exact keys (id, path, path relative to root) -> image id, and file name -> image ids."""
    exact: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    root = Path(dataset.root)
    items = [(s.image_id, s.image) for s in dataset.samples]
    items += [(i, im) for p in dataset.pairs for i, im in ((p.id_a, p.image_a), (p.id_b, p.image_b))]
    for image_id, image in items:
        keys = {_norm(image_id)}
        if isinstance(image, str):
            keys.add(_norm(image))
            try:
                keys.add(Path(image).resolve().relative_to(root.resolve()).as_posix())
            except ValueError:
                pass
        for key in keys:
            exact.setdefault(key, image_id)
        name = PurePosixPath(_norm(image if isinstance(image, str) else image_id)).name
        if image_id not in by_name.setdefault(name, []):
            by_name[name].append(image_id)
    return exact, by_name


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or bool(pd.to_numeric(column, errors="coerce").notna().any())


def prediction_dimensions(pred: pd.DataFrame, dataset: Dataset, dimensions: Sequence[str] | None = None) -> list[str]:
    """The columns of ``pred`` to score: ``dimensions`` when given; else the columns the dataset labels (MOS), or,
    for a dataset of preference pairs, every numeric column but ``image`` and the score table's text columns."""
    if dimensions:
        return list(dimensions)
    columns = [c for c in pred.columns if c != IMAGE_COLUMN and c not in TEXT_COLUMNS]
    if dataset.pairs:
        return [c for c in columns if _numeric(pred[c])]
    return [c for c in columns if c in dataset.dimensions]


def match_predictions(
    pred: pd.DataFrame, dataset: Dataset, dimensions: Sequence[str] | None = None
) -> MatchedPredictions:
    """Match the rows of a predictions table to the dataset's images.

    Args:
        pred: Table with an ``image`` column and one column per dimension.
        dataset: The dataset whose images are predicted.
        dimensions: Columns to keep (default: ``prediction_dimensions``).

    Raises:
        EvaluationError: When ``image`` or a requested dimension column is missing or not numeric.
    """
    if IMAGE_COLUMN not in pred.columns:
        raise EvaluationError(
            f"predictions have no `{IMAGE_COLUMN}` column (columns: {', '.join(map(str, pred.columns))})"
        )
    dims = prediction_dimensions(pred, dataset, dimensions)
    for d in dims:
        if d not in pred.columns:
            raise EvaluationError(f"predictions have no `{d}` column (columns: {', '.join(map(str, pred.columns))})")
    values = pred[dims].apply(pd.to_numeric, errors="coerce")
    bad = [d for d in dims if values[d].isna().all() and not pred[d].isna().all()]
    if bad:
        raise EvaluationError(f"prediction column(s) {', '.join(map(repr, bad))} hold no numbers")
    exact, names = _lookup(dataset)
    root = Path(dataset.root).resolve()
    ids: list[str | None] = []
    out = MatchedPredictions(pd.DataFrame(), len(pred))
    for raw in pred[IMAGE_COLUMN].astype(str):
        key = _norm(raw)
        found = exact.get(key)
        if found is None and Path(key).is_absolute():
            try:
                found = exact.get(Path(key).resolve().relative_to(root).as_posix())
            except ValueError:
                found = None
        if found is None:
            candidates = names.get(PurePosixPath(key).name, [])
            if len(candidates) == 1:
                found = candidates[0]
                out.by_name += 1
            elif len(candidates) > 1:
                out.ambiguous.append(raw)
            else:
                out.unmatched.append(raw)
        ids.append(found)
    frame = values.assign(image_id=ids).dropna(subset=["image_id"])
    dup = frame["image_id"].duplicated()
    out.duplicates = sorted(set(frame.loc[dup, "image_id"]))
    out.frame = frame.loc[~dup].set_index("image_id")
    return out


def _mos_metrics(p: np.ndarray, t: np.ndarray, g: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    values: dict[str, M.MetricValue] = {
        "srcc": M.srcc(p, t),
        "krcc": M.krcc(p, t),
        "plcc": M.plcc(p, t),
        "plcc_logistic": M.plcc(p, t, mapping="logistic5"),
        "rmse": M.rmse(p, t, mapping="logistic5"),
    }
    if len(set(g)) < len(g):
        values["pairwise_acc"] = M.pairwise_accuracy(p, t, g)
    row: dict[str, Any] = {k: float(v) for k, v in values.items()}
    row["n"] = int(np.isfinite(p).sum()) if p.size else 0
    ci = {}
    if n_boot > 0:
        for name, fn in CI_METRICS.items():
            if name in values:
                ci[name] = bootstrap_ci(
                    fn, p, t, groups=g, n_resamples=n_boot, seed=seed, pass_groups=name == "pairwise_acc"
                ).as_dict()
        row["ci"] = ci
    return row


def _pair_metrics(dataset: Dataset, scores: pd.Series, n_boot: int, seed: int) -> dict[str, Any]:
    lookup = scores.to_dict()
    usable = [p for p in dataset.pairs if p.id_a in lookup and p.id_b in lookup]
    a, b = [lookup[p.id_a] for p in usable], [lookup[p.id_b] for p in usable]
    label, groups = [p.label for p in usable], [p.group_id for p in usable]
    row: dict[str, Any] = {
        "preference_acc": float(M.preference_accuracy(a, b, label, groups)),
        "n_pairs": len(usable),
        "n_pairs_unscored": len(dataset.pairs) - len(usable),
    }
    if n_boot > 0:
        ci = bootstrap_ci(
            M.preference_accuracy, a, b, label, groups=groups, n_resamples=n_boot, seed=seed, pass_groups=True
        )
        row.setdefault("ci", {})["preference_acc"] = ci.as_dict()
    return row


def evaluate_predictions(
    pred: pd.DataFrame,
    dataset: Dataset,
    dimensions: Sequence[str] | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Score a predictions table against a dataset's labels.

    For each dimension with MOS in the dataset: SRCC, KRCC, PLCC (raw), PLCC after the 5-parameter logistic
    mapping, RMSE after that mapping, and same-prompt pairwise accuracy when some prompt has several images.
    When the dataset has preference pairs: preference accuracy of each dimension's scores over those pairs.

    Args:
        pred: Table with an ``image`` column and one column per dimension.
        dataset: Dataset read by ``agiqa.data.load_dataset``.
        dimensions: Dimensions to score (default: prediction columns that the dataset labels, or every
            prediction column when the dataset has pairs).
        n_boot: Bootstrap resamples (over prompts) for 95% intervals of SRCC, KRCC, PLCC and the pairwise and
            preference accuracies; 0 for none.
        seed: Seed of the bootstrap.

    Returns:
        ``{"dataset", "n_predictions", "n_matched", "matched_by_name", "unmatched", "ambiguous", "duplicates",
        "metrics": {dimension: {metric: value, "n": ..., "ci": {...}}}, "notes": [...], "warnings": [...]}``;
        ``notes`` holds every reason a value is NaN and every dropped row count, ``warnings`` every model named
        in ``pred`` that was trained on some of the matched images (``agiqa.eval.in_sample``).

    Raises:
        EvaluationError: When no dimension can be scored, or nothing matches.
    """
    columns = [c for c in pred.columns if c != IMAGE_COLUMN and c not in TEXT_COLUMNS]
    dims = prediction_dimensions(pred, dataset, dimensions)
    scorable = set(dataset.dimensions) | (set(columns) if dataset.pairs else set())
    unknown = [d for d in dims if d not in scorable]
    if not dims or unknown:
        raise EvaluationError(
            f"prediction column(s) {', '.join(map(repr, unknown or columns)) or 'none'} are not dimensions of"
            f" {dataset.name!r} ({', '.join(dataset.dimensions) or 'no MOS'}); rename the columns or choose"
            " dimensions that the dataset labels"
        )
    matched = match_predictions(pred, dataset, dims)
    if matched.n_matched == 0:
        shown = ", ".join(map(repr, (matched.unmatched + matched.ambiguous)[:5]))
        raise EvaluationError(f"no prediction matches an image of {dataset.name!r} (e.g. {shown})")
    result: dict[str, Any] = {
        "dataset": dataset.name,
        **matched.report(),
        "metrics": {},
        "notes": [],
        "warnings": training_overlap(pred, dataset.name, matched.frame.index),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", M.MetricWarning)
        for dim in dims:
            row: dict[str, Any] = {}
            p, t, g = labelled_values(matched, dataset, dim)
            if p.size or not dataset.pairs:
                row.update(_mos_metrics(p, t, g, n_boot, seed))
            if dataset.pairs:
                pair_row = _pair_metrics(dataset, matched.frame[dim].dropna(), n_boot, seed)
                if "ci" in pair_row:
                    row["ci"] = {**row.get("ci", {}), **pair_row.pop("ci")}
                row.update(pair_row)
            result["metrics"][dim] = row
            result["notes"] += [f"{dim}: {w.message}" for w in caught if issubclass(w.category, M.MetricWarning)]
            caught.clear()
    return result


def labelled_values(
    matched: MatchedPredictions, dataset: Dataset, dim: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, MOS and group ids of the matched samples that have a ``dim`` label."""
    col = matched.frame[dim]
    rows = [
        (col[s.image_id], s.labels[dim], s.group_id)
        for s in dataset.samples
        if s.image_id in col.index and dim in s.labels
    ]
    if not rows:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=object)
    p, t, g = zip(*rows, strict=True)
    return np.asarray(p, dtype=float), np.asarray(t, dtype=float), np.asarray(g, dtype=object)


def metric_table(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{dimension: {metric: value}}`` of an :func:`evaluate_predictions` result, counts and CIs left out."""
    skip = {"n", "ci", "n_pairs", "n_pairs_unscored"}
    return {d: {k: v for k, v in row.items() if k not in skip} for d, row in result["metrics"].items()}


def evaluate_on_splits(
    pred: pd.DataFrame | Sequence[pd.DataFrame],
    dataset: Dataset,
    splits: Sequence[Split],
    dimensions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate on the test side of every split.

    Args:
        pred: One predictions table used for every split (a zero-shot method, or a model trained on another
            dataset), or one table per split (a model trained on that split's training side).
        dataset: The full dataset the splits were made from.
        splits: Splits from ``agiqa.data.splits.load_splits`` or ``make_splits``.
        dimensions: Dimensions to score.

    Returns:
        One :func:`evaluate_predictions` result per split, each with its ``repeat``; feed
        ``[metric_table(r) for r in results]`` to ``agiqa.eval.report.aggregate`` for mean ± std.
    """
    frames = [pred] * len(splits) if isinstance(pred, pd.DataFrame) else list(pred)
    if len(frames) != len(splits):
        raise EvaluationError(f"got {len(frames)} prediction tables for {len(splits)} splits; give one per split")
    results = []
    for frame, split in zip(frames, splits, strict=True):
        _, test = split.apply(dataset)
        dims = prediction_dimensions(frame, dataset, dimensions)
        # Match against the whole dataset first, so rows of training images are not reported as unmatched.
        matched = match_predictions(frame, dataset, dims).frame
        on_test = matched[matched.index.isin(split.test)].rename_axis(IMAGE_COLUMN).reset_index()
        res = evaluate_predictions(on_test, test, dims)
        res["repeat"] = split.repeat
        res["warnings"] = training_overlap(frame, dataset.name, on_test[IMAGE_COLUMN])
        results.append(res)
    return results


def cross_dataset_matrix(
    results: dict[tuple[str, str], dict[str, Any]], dimension: str, metric: str = "srcc"
) -> pd.DataFrame:
    """Train-on-one, test-on-another table: rows are training datasets, columns test datasets.

    Args:
        results: ``{(trained_on, tested_on): evaluate_predictions(...)}``.
        dimension: Dimension to show (``quality`` ...).
        metric: Metric to show.

    Returns:
        A DataFrame of floats; pairs not evaluated, or without that dimension / metric, are NaN.
    """
    cells = {
        (train, test): res["metrics"].get(dimension, {}).get(metric, float("nan"))
        for (train, test), res in results.items()
    }
    rows = list(dict.fromkeys(train for train, _ in cells))
    cols = list(dict.fromkeys(test for _, test in cells))
    return pd.DataFrame(
        [[cells.get((r, c), float("nan")) for c in cols] for r in rows], index=rows, columns=cols, dtype=float
    ).rename_axis(index="trained on", columns="tested on")


__all__ = [
    "cross_dataset_matrix",
    "MatchedPredictions",
    "EvaluationError",
    "evaluate_on_splits",
    "evaluate_predictions",
    "labelled_values",
    "match_predictions",
    "metric_table",
    "prediction_dimensions",
]
