"""MOS from raw ratings (MINT-IQA eq. 1-3) and ITU-R BT.500 subject screening on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis

from agiqa.data.mos import check_ratings, mos_from_ratings, screen_subjects


def table(ratings: dict[str, list[float]]) -> pd.DataFrame:
    rows = [(s, f"i{j}", r) for s, rs in ratings.items() for j, r in enumerate(rs)]
    return pd.DataFrame(rows, columns=["subject", "image", "rating"])


def test_z_scores_by_hand() -> None:
    # A: mean 2, std 1 -> z = -1, 0, 1; B: mean 4, std 2 -> z = 1, -1, 0; C is constant -> cannot be z-scored
    result = mos_from_ratings(table({"A": [1, 2, 3], "B": [6, 2, 4], "C": [3, 3, 3]}))
    zp = {z: 100 * (z + 3) / 6 for z in (-1, 0, 1)}  # z' of eq. 1
    assert result.mos.to_dict() == pytest.approx(
        {"i0": (zp[-1] + zp[1]) / 2, "i1": (zp[0] + zp[-1]) / 2, "i2": (zp[1] + zp[0]) / 2}
    )
    assert result.mos["i0"] == pytest.approx(50.0) and result.mos["i1"] == pytest.approx(125 / 3)
    assert result.std["i0"] == pytest.approx(np.std([zp[-1], zp[1]], ddof=1))
    assert result.rejected == {"C": "constant"} and result.rejection_rate == pytest.approx(1 / 3)
    assert result.count.to_dict() == {"i0": 2, "i1": 2, "i2": 2}
    frame = result.to_frame()
    assert list(frame.columns) == ["image", "mos", "std", "count"] and len(frame) == 3


def test_z_scores_remove_subject_offset_and_scale() -> None:
    a = [1.0, 4.0, 2.0, 5.0]
    result = mos_from_ratings(table({"A": a, "B": [10 * r + 7 for r in a]}), screen=False)
    z = (np.array(a) - np.mean(a)) / np.std(a, ddof=1)
    assert result.mos.to_numpy() == pytest.approx(100 * (z + 3) / 6)
    assert result.std.to_numpy() == pytest.approx(0.0, abs=1e-9)


def panel() -> dict[str, list[float]]:
    """10 images; 10 consistent subjects spread -2..2 around each image's quality (beta2 stays in [2, 4])."""
    offsets = np.array([-2, -1, -1, 0, 0, 0, 0, 1, 1, 2.0])
    quality = 5 + 0.3 * np.arange(10)
    return {f"s{k}": [quality[j] + offsets[(k + j) % 10] for j in range(10)] for k in range(10)}


def test_bt500_rejects_inconsistent_subject_keeps_the_rest() -> None:
    ratings = panel()
    quality = 5 + 0.3 * np.arange(10)
    ratings["erratic"] = [q + (4 if j % 2 == 0 else -4) for j, q in enumerate(quality)]  # high, low, high ...
    df = table(ratings)
    assert 2 <= kurtosis(df[df.image == "i0"]["rating"], fisher=False) <= 4  # the "normal" (2 std) branch
    screening = screen_subjects(check_ratings(df))
    assert screening.loc["erratic", ["P", "Q", "N"]].tolist() == [5, 5, 10]
    assert screening.loc[[f"s{k}" for k in range(10)], ["P", "Q"]].to_numpy().sum() == 0
    result = mos_from_ratings(df)
    assert result.rejected == {"erratic": "bt500"}
    assert result.rejection_rate == pytest.approx(1 / 11) and result.rating_rejection_rate == pytest.approx(1 / 11)
    assert result.count.eq(10).all()
    by_index = result.mos.sort_index(key=lambda i: i.str[1:].astype(int)).to_numpy()
    assert np.all(np.diff(by_index) > 0)  # the panel's true order survives
    assert mos_from_ratings(df, screen=False).rejected == {}


def test_bt500_keeps_a_consistently_biased_subject() -> None:
    ratings = panel()
    ratings["harsh"] = [5 + 0.3 * j + 4 for j in range(10)]  # always far above: a bias, which z-scoring removes
    screening = screen_subjects(check_ratings(table(ratings)))
    assert screening.loc["harsh", ["P", "Q"]].tolist() == [10, 0]  # outliers, but all on one side
    assert screening.loc["harsh", "balance"] == 1.0 and not screening["rejected"].any()


def test_heavy_tailed_image_uses_wider_threshold() -> None:
    ratings = {f"s{k}": [5.0, 5.0] for k in range(9)}
    ratings["s0"] = [4.0, 6.0]
    ratings["odd"] = [7.0, 3.0]
    screening = screen_subjects(check_ratings(table(ratings)))
    # image 0: nine ratings near 5 and one 7 -> beta2 > 4, so the cut is sqrt(20) std and nobody is counted
    assert screening["P"].sum() == 0 and screening["Q"].sum() == 0


def test_bad_ratings_are_named() -> None:
    with pytest.raises(ValueError, match="missing column 'rating'"):
        mos_from_ratings(pd.DataFrame({"subject": [1], "image": ["a"]}))
    with pytest.raises(ValueError, match="1 empty or non-numeric rating.*row.* 3"):
        mos_from_ratings(pd.DataFrame({"subject": [1, 1], "image": ["a", "b"], "rating": [1, "x"]}))
    with pytest.raises(ValueError, match="subject '1' rated image 'a' more than once"):
        mos_from_ratings(pd.DataFrame({"subject": [1, 1], "image": ["a", "a"], "rating": [1, 2]}))
    with pytest.raises(ValueError, match="every subject was rejected"):
        mos_from_ratings(table({"A": [1, 1], "B": [2, 2]}))
