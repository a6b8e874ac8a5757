"""The comparison of generators from per-image scores: means with intervals, groups, ranking, win rates.

Everything is computed per dimension from one table with columns ``generator, prompt_id, <dimension>`` (one row per
image; rows with an ``error`` or a missing score are left out):

* **Per prompt**, each generator's images of that prompt are averaged first, so a prompt counts once whatever the
  number of samples.
* **Mean**: the mean over prompts of those per-prompt means; its 95% interval is a percentile bootstrap over the
  prompts (``agiqa.eval.bootstrap``). The same per group (a value of a grouping column of the suite).
* **Ranking**: by mean, best first in the dimension's direction (``higher_is_better``).
* **Win rate** of A over B: over the prompts both have, the share where A's per-prompt mean is better than B's
  (ties count half) -- the fair comparison when prompts differ in difficulty and generators miss some prompts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agiqa.eval.bootstrap import bootstrap_ci
from agiqa.eval.values import MetricWarning

OVERALL = "all"
"""Group column name of the rows over all prompts."""


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values))


@dataclass(frozen=True)
class BenchStats:
    """The comparison of one bench.

    Attributes:
        means: Long table ``dimension, group_column, group, generator, mean, low, high, n_prompts, n_images,
            rank`` (``group_column`` is ``all`` for the overall rows; ``rank`` 1 is best within its group).
        win_rates: Long table ``dimension, generator, opponent, win_rate, n_prompts`` for every ordered pair.
        higher_is_better: Direction of each dimension.
        confidence: Coverage of the intervals.
        n_resamples: Bootstrap resamples per interval.
    """

    means: pd.DataFrame
    win_rates: pd.DataFrame
    higher_is_better: dict[str, bool]
    confidence: float
    n_resamples: int

    def ranking(self, dimension: str) -> list[str]:
        """Generators best first on ``dimension`` (over all prompts)."""
        rows = self.means[(self.means["dimension"] == dimension) & (self.means["group_column"] == OVERALL)]
        return rows.sort_values("rank")["generator"].tolist()


def _scored(scores: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """The rows scored on ``dimension`` (no error, a number), with the score in ``value``."""
    value = pd.to_numeric(scores[dimension], errors="coerce")
    ok = value.notna()
    if "error" in scores.columns:
        ok &= scores["error"].fillna("").astype(str).str.strip() == ""
    return scores[ok].assign(value=value[ok])


def per_prompt(scores: pd.DataFrame, dimension: str, how: str = "mean") -> pd.DataFrame:
    """``prompt_id x generator`` table of per-prompt mean scores (NaN where a generator has no scored image).

    ``how="size"`` counts the scored images instead.
    """
    rows = _scored(scores, dimension)
    return rows.pivot_table(index="prompt_id", columns="generator", values="value", aggfunc=how)


def _ranks(means: pd.Series, higher_is_better: bool) -> pd.Series:
    return means.rank(ascending=not higher_is_better, method="min").astype("Int64")


def _interval(values: np.ndarray, n_resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        ci = bootstrap_ci(_mean, values, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return ci.low, ci.high


def generator_means(
    table: pd.DataFrame,
    counts: pd.DataFrame,
    higher_is_better: bool,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per generator (columns of ``table``): mean over prompts, bootstrap interval, prompt and image counts, rank."""
    rows = []
    for generator in table.columns:
        values = table[generator].dropna().to_numpy(np.float64)
        low, high = _interval(values, n_resamples, confidence, seed) if values.size else (np.nan, np.nan)
        rows.append(
            {
                "generator": generator,
                "mean": float(values.mean()) if values.size else np.nan,
                "low": low,
                "high": high,
                "n_prompts": int(values.size),
                "n_images": int(counts.loc[table[generator].dropna().index, generator].sum()),
            }
        )
    frame = pd.DataFrame(rows, columns=["generator", "mean", "low", "high", "n_prompts", "n_images"])
    frame["rank"] = _ranks(frame["mean"], higher_is_better)
    return frame


def win_rates(table: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    """Same-prompt win rate of every generator over every other (ties half; over the prompts both have)."""
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for a in table.columns:
        for b in table.columns:
            if a == b:
                continue
            both = table[[a, b]].dropna()
            diff = sign * (both[a] - both[b]).to_numpy()
            rate = float(((diff > 0) + 0.5 * (diff == 0)).mean()) if len(both) else np.nan
            rows.append({"generator": a, "opponent": b, "win_rate": rate, "n_prompts": len(both)})
    return pd.DataFrame(rows, columns=["generator", "opponent", "win_rate", "n_prompts"])


def compare_generators(
    scores: pd.DataFrame,
    dimensions: dict[str, bool],
    groups: pd.DataFrame | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BenchStats:
    """Compare generators on every dimension (see module docstring).

    Args:
        scores: One row per image: ``generator``, ``prompt_id``, a column per dimension, optionally ``error``.
        dimensions: ``{dimension: higher_is_better}``.
        groups: The suite's grouping columns indexed by prompt id (None: no per-group rows).
        n_resamples: Bootstrap resamples per interval.
        confidence: Coverage of the intervals.
        seed: Seed of the bootstrap.
    """
    scores = scores.assign(prompt_id=scores["prompt_id"].astype(str))
    means, wins = [], []
    for dim, up in dimensions.items():
        table = per_prompt(scores, dim)
        counts = per_prompt(scores, dim, how="size").reindex(index=table.index, columns=table.columns).fillna(0)
        overall = generator_means(table, counts, up, n_resamples, confidence, seed)
        means.append(overall.assign(dimension=dim, group_column=OVERALL, group=OVERALL))
        for column in [] if groups is None else groups.columns:
            labels = groups[column].reindex(table.index)
            for value in sorted(labels.dropna().unique()):
                part = table[labels == value]
                stats = generator_means(part, counts.loc[part.index], up, n_resamples, confidence, seed)
                means.append(stats.assign(dimension=dim, group_column=column, group=value))
        wins.append(win_rates(table, up).assign(dimension=dim))
    columns = ["dimension", "group_column", "group", "generator", "mean", "low", "high", "n_prompts", "n_images"]
    mean_table = pd.concat(means, ignore_index=True)[[*columns, "rank"]]
    win_table = pd.concat(wins, ignore_index=True)[["dimension", "generator", "opponent", "win_rate", "n_prompts"]]
    return BenchStats(mean_table, win_table, dict(dimensions), confidence, n_resamples)
