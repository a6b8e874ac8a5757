"""The committed protocol results and the shipped configs agree: each result's config digest is the one
``benchmarks/run_protocol.py`` computes for that config today, so its figures describe the config as shipped and
``--resume`` continues the run (a new config key at its default must not change the digest of older results)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from agiqa.configs import find_config
from agiqa.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = [  # results written before config digests existed carry none
    path
    for path in sorted((REPO / "benchmarks" / "results").glob("protocol_*-agiqa3k.json"))
    if "config_digest" in json.loads(path.read_text())
]


def _run_protocol():
    """``benchmarks/run_protocol.py`` as a module (it imports its sibling helpers, hence the path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO / "benchmarks"))
        spec = importlib.util.spec_from_file_location("run_protocol", REPO / "benchmarks" / "run_protocol.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_committed_results_match_the_shipped_configs(path: Path) -> None:
    doc = json.loads(path.read_text())
    config = TrainConfig.from_yaml(find_config(doc["config"]))
    assert _run_protocol().config_digest(config) == doc["config_digest"], (
        f"{path.name} was measured with another {doc['config']}: rerun it, or restore the config"
    )


def test_a_later_key_changes_the_digest_only_away_from_its_default() -> None:
    digest = _run_protocol().config_digest
    config = TrainConfig.from_yaml(find_config("lite/tsp-mgs-ens"))
    assert config.train.mismatch.part_margins == [0.5, 1.5]
    default = config.replace(train={"mismatch": {"part_margins": None}})
    assert len({digest(config), digest(default), digest(config.replace(train={"mismatch": {"margin": 1.0}}))}) == 3


def test_resume_of_a_complete_run_leaves_its_files_as_they_are(tmp_path: Path, monkeypatch) -> None:
    module = _run_protocol()
    saved = REPO / "benchmarks" / "results" / "protocol_tsp-mgs-pairs-lite-agiqa3k.json"
    doc = json.loads(saved.read_text())
    (tmp_path / saved.name).write_text(saved.read_text())
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    splits = [None] * len(doc["per_split"])  # never read: no split is left to run
    path = module.run_method("tsp-mgs-pairs", doc["config"], type("D", (), {"root": tmp_path}), splits, [], {}, True)
    assert path == tmp_path / saved.name
    assert path.read_text() == saved.read_text()


def test_resume_points_keep_every_earlier_resume() -> None:
    points = _run_protocol().resume_points
    assert points({}) == []
    assert points({"resumed_after_splits": 3}) == [3]
    assert points({"resumed_after_splits": [3, 5]}) == [3, 5]
