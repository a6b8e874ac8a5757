"""``benchmarks/quality_in_alignment.py`` trains each split as the protocol does: with no quality mixed in, its test
SRCCs must be the protocol's own for the same split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import _train_tiny as tiny
from agiqa.data.splits import make_splits
from agiqa.train.checkpoint import snapshot
from agiqa.train.protocol import run_protocol
from agiqa.train.setup import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
quality_in_alignment = pytest.importorskip("quality_in_alignment")


def test_unmixed_figures_are_the_protocols(tmp_path: Path, tiny_protocol_data) -> None:
    data = tiny_protocol_data
    cfg = tiny.train_config(tmp_path, "tiny-mix", 0.25, epochs=3, batch_size=8, lr=0.02)
    splits = make_splits(data, n=2, test_ratio=0.5, seed=0)
    protocol = run_protocol(cfg, data, splits, robustness_ratios=(), progress=False)
    setup = prepare(cfg, data)
    initial = snapshot(setup.model)
    for i in (1, 0):  # out of order: each split starts from the initial head
        row = quality_in_alignment.split_row(cfg, setup, data, splits[i], i, initial)
        assert quality_in_alignment.FRACTIONS[0] == 0.0
        assert row["test"][0] == pytest.approx(protocol.per_split[i]["alignment"]["srcc"], abs=1e-9)
        assert row["quality_srcc"] == pytest.approx(protocol.per_split[i]["quality"]["srcc"], abs=1e-9)
        assert row["picked"] in quality_in_alignment.FRACTIONS
        assert len(row["val"]) == len(row["test"]) == len(quality_in_alignment.FRACTIONS)
