"""MOS from raw subject ratings as in MINT-IQA (AIGCIQA2023) Sec. IV-C, eq. 1-3, after BT.500 screening.

Choices where the paper is loose, written down here and tested:

* Eq. 2 prints the mean and std with an image index but sums over subjects; the text ("N_i is the number of
  images judged by subject i") and the usual practice make them per-subject statistics: ``z_ij = (r_ij - mu_i)
  / sigma_i`` with ``mu_i``, ``sigma_i`` (N-1 denominator) over the images subject ``i`` rated.
* ``z' = 100 (z + 3) / 6`` maps z in [-3, 3] to [0, 100]; values beyond 3 std are not clipped.
* Screening is the beta2 observer test of ITU-R BT.500 (Annex 2, 2.3.1 in BT.500-13), one pass: per image the
  mean, std (N-1) and kurtosis ``beta2 = m4 / m2**2``; a rating counts in ``P_i`` when it is at least ``mean +
  t * std`` and in ``Q_i`` when at most ``mean - t * std``, with ``t = 2`` if ``2 <= beta2 <= 4`` (normal)
  else ``sqrt(20)``. Subject ``i`` is rejected if ``(P_i + Q_i) / N_i > 0.05`` and ``|P_i - Q_i| / (P_i + Q_i)
  < 0.3``. Images whose ratings all agree (std 0) count towards neither.
* A subject whose ratings are all equal cannot be z-scored and is rejected too (reason ``constant``).
* The rejection rate is the fraction of subjects rejected; ``rating_rejection_rate`` is the fraction of
  ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import kurtosis

COLUMNS = ("subject", "image", "rating")


@dataclass
class MOSResult:
    """MOS per image and what screening removed.

    Attributes:
        mos: MOS per image (index: image), mean of the rescaled z-scores of the accepted subjects.
        std: Std (N-1) of those rescaled z-scores per image (NaN with one rating).
        count: Number of accepted ratings per image.
        rejected: Rejected subject -> reason (``bt500`` or ``constant``).
        rejection_rate: Rejected subjects / all subjects.
        rating_rejection_rate: Ratings of rejected subjects / all ratings.
        screening: Per subject ``P``, ``Q``, ``N``, ``outlier_ratio`` (P+Q)/N, ``balance`` |P-Q|/(P+Q).
    """

    mos: pd.Series
    std: pd.Series
    count: pd.Series
    rejected: dict[str, str]
    rejection_rate: float
    rating_rejection_rate: float
    screening: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """``image, mos, std, count`` table."""
        frame = pd.DataFrame({"mos": self.mos, "std": self.std, "count": self.count})
        return frame.rename_axis("image").reset_index()


def check_ratings(ratings: pd.DataFrame, source: str = "ratings") -> pd.DataFrame:
    """Validate a ``subject, image, rating`` table and return it with float ratings.

    Args:
        ratings: One row per (subject, image) rating.
        source: Name of the table in error messages (its file path).

    Raises:
        ValueError: A column is missing, a rating is empty or not a number, or a subject rated an image twice.
    """
    missing = [c for c in COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"{source}: missing column {', '.join(map(repr, missing))}; need {', '.join(COLUMNS)}")
    out = ratings[list(COLUMNS)].copy()
    out["subject"], out["image"] = out["subject"].astype(str), out["image"].astype(str)
    out["rating"] = pd.to_numeric(out["rating"], errors="coerce")
    bad = out.index[~np.isfinite(out["rating"].astype(float))]
    if len(bad):
        rows = ", ".join(str(int(i) + 2) for i in bad[:5])
        raise ValueError(f"{source}: {len(bad)} empty or non-numeric rating(s), first at row(s) {rows}; fix them")
    dup = out.duplicated(["subject", "image"], keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        raise ValueError(f"{source}: subject {first.subject!r} rated image {first.image!r} more than once")
    return out


def screen_subjects(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ITU-R BT.500 beta2 screening counts per subject (see the module docstring).

    Args:
        ratings: ``subject, image, rating`` rows (as returned by ``check_ratings``).

    Returns:
        Per subject ``P, Q, N, outlier_ratio, balance, rejected``.
    """
    by_image = ratings.groupby("image")["rating"]
    mean = by_image.transform("mean")
    std = by_image.transform("std").fillna(0.0)
    beta2 = by_image.transform(lambda r: kurtosis(r, fisher=False, bias=True) if r.nunique() > 1 else np.nan)
    t = np.where((beta2 >= 2) & (beta2 <= 4), 2.0, np.sqrt(20.0))
    spread = std > 0
    counts = pd.DataFrame(
        {
            "subject": ratings["subject"],
            "P": (spread & (ratings["rating"] >= mean + t * std)).astype(int),
            "Q": (spread & (ratings["rating"] <= mean - t * std)).astype(int),
        }
    )
    table = counts.groupby("subject").agg(P=("P", "sum"), Q=("Q", "sum"), N=("P", "size"))
    pq = table["P"] + table["Q"]
    table["outlier_ratio"] = pq / table["N"]
    table["balance"] = (table["P"] - table["Q"]).abs() / pq.where(pq > 0)
    table["rejected"] = (table["outlier_ratio"] > 0.05) & (table["balance"] < 0.3)
    return table


def mos_from_ratings(ratings: pd.DataFrame, *, screen: bool = True) -> MOSResult:
    """MOS per image from raw ratings: BT.500 screening, per-subject z-scores, rescale to [0, 100], average.

    Args:
        ratings: Columns ``subject, image, rating``; one row per rating (subjects need not rate every image).
        screen: Run the BT.500 subject screening (off: only constant subjects are dropped).

    Returns:
        The MOS table, the rejected subjects and the rejection rates.
    """
    ratings = check_ratings(ratings)
    screening = screen_subjects(ratings)
    rejected = {s: "bt500" for s in screening.index[screening["rejected"]]} if screen else {}
    subject_std = ratings.groupby("subject")["rating"].std()
    rejected |= {s: "constant" for s in subject_std.index[~(subject_std > 0)] if s not in rejected}
    kept = ratings[~ratings["subject"].isin(list(rejected))]
    if kept.empty:
        raise ValueError("every subject was rejected; check the ratings (or pass screen=False)")
    by_subject = kept.groupby("subject")["rating"]
    z = (kept["rating"] - by_subject.transform("mean")) / by_subject.transform("std")
    rescaled = (100.0 * (z + 3.0) / 6.0).groupby(kept["image"])
    n_subjects = ratings["subject"].nunique()
    return MOSResult(
        mos=rescaled.mean(),
        std=rescaled.std(),
        count=rescaled.size(),
        rejected=rejected,
        rejection_rate=len(rejected) / n_subjects,
        rating_rejection_rate=1.0 - len(kept) / len(ratings),
        screening=screening,
    )
