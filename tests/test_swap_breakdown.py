"""``benchmarks/swap_breakdown.py`` breaks the protocol's prompt-swap share down by group: its overall share must be
the protocol's own for the same split, and its every-other-prompt scores the ones a single pair gets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _train_tiny as tiny
from agiqa.data.splits import make_splits
from agiqa.train.protocol import run_protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
swap_breakdown = pytest.importorskip("swap_breakdown")


@pytest.fixture
def data(tiny_protocol_data):
    return tiny_protocol_data


def test_breakdown_reproduces_the_protocols_share(tmp_path: Path, data) -> None:
    cfg = tiny.train_config(tmp_path, "tiny-swap", 0.25, epochs=3, batch_size=8, lr=0.02)
    splits = make_splits(data, n=2, test_ratio=0.5, seed=0)
    protocol = run_protocol(cfg, data, splits, robustness_ratios=(), progress=False)
    records = swap_breakdown.split_records(cfg, data, splits, [0, 1])
    for i in (0, 1):
        part = records[records.split == i]
        assert len(part) == len(splits[i].test)
        share = float(np.mean(part["donor"] < part["own"]))
        assert share == pytest.approx(protocol.per_split[i]["alignment"]["prompt_swap_share"])
    table = swap_breakdown.breakdown(records, records["image"].map(swap_breakdown.setting))
    assert table.loc["all", "images"] == len(records)
    assert table.loc["all", "random_other"] == pytest.approx(np.mean(records["donor"] < records["own"]))
    assert table.drop(index="all")["images"].sum() == len(records)


def test_every_other_prompt_is_scored_as_one_pair_would_be(tmp_path: Path, data) -> None:
    from agiqa.train.setup import prepare

    cfg = tiny.train_config(tmp_path, "tiny-swap", 0.25, epochs=1, batch_size=8, lr=0.02)
    bank = prepare(cfg, data).bank
    rows = list(range(0, len(bank.table), 3))
    own, others = swap_breakdown.all_prompt_scores(bank, rows, "alignment")
    groups = list(dict.fromkeys(bank.table.groups[r] for r in rows))
    assert others.shape == (len(rows), len(groups))
    assert np.allclose(own, bank.predict(rows)["alignment"], atol=1e-6)
    for i, r in enumerate(rows):
        for j, g in enumerate(groups):
            if g == bank.table.groups[r]:
                assert np.isnan(others[i, j])
                continue
            donor = next(x for x in rows if bank.table.groups[x] == g)
            alone = bank.predict([r], prompt_rows=[int(bank.prompt_row[donor])])["alignment"][0]
            assert others[i, j] == pytest.approx(alone, abs=1e-5)


def test_setting_is_the_name_before_the_prompt_number() -> None:
    names = pd.Series(["sd1.5_lowstep_012.jpg", "AttnGAN_normal_100.png", "midjourney_normal_007"])
    assert list(names.map(swap_breakdown.setting)) == ["sd1.5_lowstep", "AttnGAN_normal", "midjourney_normal"]


def test_report_names_every_split_and_group() -> None:
    records = pd.DataFrame(
        {
            "split": [0, 0, 1, 1],
            "image": ["a_normal_001.jpg", "b_normal_002.jpg", "a_normal_003.jpg", "b_normal_001.jpg"],
            "mos": [1.0, 2.0, 3.0, 4.0],
            "own": [1.0, 1.0, 1.0, 1.0],
            "donor": [0.5, 1.5, 0.5, 0.5],
            "lower_all": [1.0, 0.0, 0.5, 1.0],
            "drop_all": [0.5, -0.5, 0.1, 0.4],
        }
    )
    meta = {"command": "cmd", "when": "now", "machine": "m", "note": "quiet"}
    text = swap_breakdown.markdown(records, "lite/x", {0: 0.5}, meta)
    assert "| 0 | 0.5000 | 0.5000 |" in text and "| 1 | 1.0000 | – |" in text
    assert "| a_normal | 2 | 2.00 | 100.0% | 75.0% | 0.30 |" in text
    assert "| all | 4 | 2.50 | 75.0% | 62.5% | 0.12 |" in text
