"""The --keep language: what it keeps (three-valued over missing scores) and where its errors point."""

from __future__ import annotations

import numpy as np
import pytest

from agiqa.api import KeepError, Reference, parse_keep

DIMS = ("quality", "alignment")
REFERENCE = Reference.from_scores({"quality": np.linspace(0, 5, 501), "alignment": np.linspace(1, 3, 201)})
NAN = float("nan")
COLUMNS = {
    "quality": np.array([1.0, 2.5, 3.5, 4.5, NAN, 3.0]),
    "alignment": np.array([2.9, 2.0, 1.5, 2.6, 2.8, NAN]),
}


def kept(text: str) -> list[int]:
    rule = parse_keep(text, DIMS, REFERENCE)
    columns = {**COLUMNS, **{f"{d}_pct": REFERENCE.percentile(d, v) for d, v in COLUMNS.items()}}
    return np.flatnonzero(rule.mask(columns)).tolist()


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("quality>=3", [2, 3, 5]),
        ("quality >= p60", [2, 3, 5]),  # p60 of 0..5 is 3.0
        ("quality>p60", [2, 3]),
        ("quality>=p60 and alignment>=2.5", [3]),
        ("quality<2 or alignment<1.6", [0, 2]),
        ("quality_pct >= 60", [2, 3, 5]),
        ("alignment>=p75", [0, 3, 4]),  # p75 of 1..3 is 2.5
        ("quality == 2.5", [1]),
        ("quality != 2.5", [0, 2, 3, 5]),
        ("quality>=1 AND NOT alignment<2", [0, 1, 3]),
        ("quality>4 or quality<2 and alignment>2.5", [0, 3]),  # and binds tighter than or
        ("(quality>4 or quality<2) and alignment>2.7", [0]),
        ("not not quality>=3.5", [2, 3]),
        ("quality>=-1e3 and alignment<=+3", [0, 1, 2, 3]),
    ],
)
def test_what_is_kept(text: str, rows: list[int]) -> None:
    assert kept(text) == rows


def test_missing_scores_are_unknown_not_false() -> None:
    # row 4 has no quality, row 5 no alignment
    assert 4 not in kept("not quality<2")  # not(unknown) is unknown: not kept
    assert 4 in kept("quality<2 or alignment>2.7")  # unknown or True is True
    assert 5 not in kept("quality>2 and alignment>0")  # True and unknown is unknown
    assert kept("quality<0 and alignment>0") == []  # False and unknown is False (not kept either way)
    assert 4 not in kept("quality>=0 or not quality>=0")  # no excluded middle on a missing score


def test_percentile_thresholds_come_from_the_reference() -> None:
    rule = parse_keep("quality>=p60 and alignment<p12.5", DIMS, REFERENCE)
    terms = [rule.condition.left, rule.condition.right]
    assert [t.threshold for t in terms] == pytest.approx(
        [REFERENCE.value("quality", 60), REFERENCE.value("alignment", 12.5)]
    )
    assert rule.columns == ("quality", "alignment")


def caret_column(err: KeepError) -> int:
    message_line, text_line, caret_line = str(err).splitlines()
    assert text_line.strip() == err.text.strip()
    return caret_line.index("^") - 1  # both lines are indented by two spaces


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("quality >= abc", 12, "expected a number or a percentile like p60, found 'abc'"),
        ("quality >> 2", 10, "expected a number or a percentile like p60, found '>'"),
        ("sharpness > 2", 1, "unknown dimension 'sharpness'; the model has: quality, alignment"),
        ("quality>=p60 and", 17, "expected a dimension (quality, alignment), found 'the end'"),
        ("(quality>1 or alignment>1", 26, "expected ')' to close the '(' at column 1"),
        ("quality>1 alignment>1", 11, "expected 'and', 'or' or the end, found 'alignment'"),
        ("quality > 1 $ 2", 13, "unexpected character '$'"),
        ("__import__('os').system('x')", 12, 'unexpected character "\'"'),
        ("quality 3", 9, "expected a comparison (>= > <= < == !=) after 'quality', found '3'"),
        ("quality >= p101", 12, "percentile p101 is above p100"),
        ("quality_pct >= p50", 16, "already a percentile"),
        ("", 1, "empty expression"),
        ("and quality>1", 1, "expected a dimension"),
    ],
)
def test_errors_point_at_the_bad_token(text: str, column: int, says: str) -> None:
    with pytest.raises(KeepError) as info:
        parse_keep(text, DIMS, REFERENCE)
    assert info.value.column == column, str(info.value)
    assert says in str(info.value)
    assert f"(column {column})" in str(info.value)
    assert caret_column(info.value) == column


def test_percentiles_need_a_reference() -> None:
    assert parse_keep("quality>=3", DIMS, None).mask({"quality": [3.5, 2.0]}).tolist() == [True, False]
    with pytest.raises(KeepError, match="'p60' needs the model's reference distribution") as info:
        parse_keep("quality>=3 and alignment>=p60", DIMS, None)
    assert info.value.column == 27
    with pytest.raises(KeepError, match="'quality_pct' needs the model's reference distribution"):
        parse_keep("quality_pct>50", DIMS, None)
