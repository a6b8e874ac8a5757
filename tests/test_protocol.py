"""Train/test protocol on a tiny synthetic dataset: tables, robustness report, shuffled-prompt check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import _train_tiny as tiny
from agiqa.data.splits import make_splits, stored_splits
from agiqa.train.protocol import ProtocolResult, add_robustness, run_protocol, write_protocol
from agiqa.train.selection import mos_pairs
from agiqa.train.table import image_table


@pytest.fixture
def data(tiny_protocol_data):
    return tiny_protocol_data


def test_protocol_writes_mean_std_table(tmp_path: Path, data) -> None:
    cfg = tiny.train_config(tmp_path, "tiny-protocol", 0.25, epochs=5, batch_size=8, lr=0.02)
    splits = make_splits(data, n=2, test_ratio=0.34, seed=0)
    result = run_protocol(cfg, data, splits, robustness_ratios=(0.9,), progress=False)
    assert len(result.per_split) == 2 and len(result.train_seconds) == 2
    table = result.table.set_index(["dimension", "metric"])
    for dim in ("quality", "alignment"):
        for metric in ("srcc", "plcc", "krcc", "pairwise_acc"):
            assert table.loc[(dim, metric), "n"] + table.loc[(dim, metric), "n_failed"] == 2
    assert set(result.robustness["perturbation"]) == {"ORG", "HF&CC(0.90)"}
    assert {"alignment_drop", "alignment_share_lower"} <= set(result.shuffled)
    assert "quality_drop" not in result.shuffled  # quality does not need the prompt
    json_path, md_path = write_protocol(result, tmp_path / "out", "protocol_tiny")
    text = md_path.read_text()
    assert "| quality |" in text and "±" in text and "Robustness" in text and "Shuffled prompts" in text
    assert json_path.is_file()


def test_stored_splits_are_made_once_and_reused(tmp_path: Path, data) -> None:
    path = tmp_path / "splits.json"
    first = stored_splits(data, path, n=2)
    stamp = path.stat().st_mtime_ns
    again = stored_splits(data, path, n=2)
    assert path.stat().st_mtime_ns == stamp and [s.test for s in first] == [s.test for s in again]
    assert not set(first[0].train) & set(first[0].test)


def test_mos_pairs_are_same_prompt_and_balanced(data) -> None:
    table = image_table(data)
    pairs = mos_pairs(table, range(len(table)), ["quality"], tie_margin=0.0, seed=0)
    assert all(table.groups[a] == table.groups[b] for a, b in zip(pairs.a, pairs.b, strict=False))
    mos = table.labels["quality"]
    assert all((mos[a] > mos[b]) == (lab == 1.0) for a, b, lab in zip(pairs.a, pairs.b, pairs.label, strict=False))
    assert 0.2 < pairs.label.mean() < 0.8


def test_prompt_swap_is_probed_on_new_and_on_seen_prompts(tmp_path: Path, data, monkeypatch) -> None:
    """``prompt_swap_share`` comes from the test rows, ``prompt_swap_share_seen`` from rows trained on."""
    import agiqa.train.protocol as protocol

    calls = []
    real = protocol.shuffled_prompt_check

    def spy(bank, rows, seed=0):
        out = real(bank, rows, seed)
        calls.append((set(bank.table.groups[r] for r in rows), out["alignment_share_lower"]))
        return out

    monkeypatch.setattr(protocol, "shuffled_prompt_check", spy)
    cfg = tiny.train_config(tmp_path, "tiny-protocol", 0.25, epochs=2, batch_size=8, lr=0.02)
    splits = make_splits(data, n=1, test_ratio=0.34, seed=0)
    result = run_protocol(cfg, data, splits, robustness_ratios=(), progress=False)
    (test_groups, test_share), (seen_groups, seen_share) = calls
    test_side = {s.group_id for s in data.samples if s.image_id in set(splits[0].test)}
    assert test_groups == test_side and seen_groups and not seen_groups & test_side
    alignment = result.per_split[0]["alignment"]
    assert alignment["prompt_swap_share"] == test_share and alignment["prompt_swap_share_seen"] == seen_share


def test_a_resumed_run_measures_what_an_uninterrupted_one_does(tmp_path: Path, data) -> None:
    """Stopped after split 1 and resumed from the JSON it saved, the run's split 2 equals the full run's split 2;
    split 1 and split 1's robustness report come from the file, not from training again."""
    cfg = tiny.train_config(tmp_path, "tiny-resume", 0.25, epochs=3, batch_size=8, lr=0.02)
    splits = make_splits(data, n=2, test_ratio=0.34, seed=0)
    full = run_protocol(cfg, data, splits, robustness_ratios=(0.9,), progress=False)

    saved: list[Path] = []
    first = run_protocol(
        cfg,
        data,
        splits[:1],
        robustness_ratios=(0.9,),
        progress=False,
        on_split=lambda r: saved.append(write_protocol(r, tmp_path / "out", "protocol_tiny")[0]),
    )
    assert len(saved) == 1 and len(first.per_split) == 1
    earlier = ProtocolResult.from_json(json.loads(saved[0].read_text()))
    earlier.per_split[0]["quality"]["srcc"] = -2.0  # marks what came from the file
    resumed = run_protocol(cfg, data, splits, robustness_ratios=(0.9,), progress=False, resume=earlier)
    assert resumed.per_split[0]["quality"]["srcc"] == -2.0 and len(resumed.train_seconds) == 2
    assert resumed.per_split[1].keys() == full.per_split[1].keys()
    for dim, metrics in full.per_split[1].items():
        assert resumed.per_split[1][dim] == pytest.approx(metrics, nan_ok=True)
    assert len(resumed.robustness) == len(full.robustness)
    # the validation history of each split (which epoch was kept, and why) survives the file and the resume
    assert resumed.val_history[0] == first.val_history[0] and len(resumed.val_history) == 2
    assert [e["epoch"] for e in resumed.val_history[1]] == [e["epoch"] for e in full.val_history[1]]
    with pytest.raises(ValueError, match="cannot resume"):
        run_protocol(cfg.replace(name="other"), data, splits, progress=False, resume=earlier)


def test_robustness_added_later_is_the_report_a_full_run_writes(tmp_path: Path, data) -> None:
    """A run saved without the report gets split 0's report by training split 0 again; the splits stay the
    saved ones, and a saved split 0 that the present code does not reproduce is refused."""
    cfg = tiny.train_config(tmp_path, "tiny-robust", 0.25, epochs=3, batch_size=8, lr=0.02)
    splits = make_splits(data, n=2, test_ratio=0.34, seed=0)
    full = run_protocol(cfg, data, splits, robustness_ratios=(0.9,), progress=False)
    bare = run_protocol(cfg, data, splits, robustness_ratios=(), progress=False)
    saved = ProtocolResult.from_json(json.loads(write_protocol(bare, tmp_path / "out", "protocol_tiny")[0].read_text()))
    assert saved.robustness.empty

    added = add_robustness(cfg, data, splits, saved, ratios=(0.9,))
    assert added.per_split == saved.per_split and added.train_seconds == saved.train_seconds
    got = added.robustness.set_index(["perturbation", "dimension", "metric"])["value"]
    want = full.robustness.set_index(["perturbation", "dimension", "metric"])["value"]
    assert set(got.index) == set(want.index) and "HF&CC(0.90)" in set(added.robustness["perturbation"])
    assert got.sort_index().to_numpy() == pytest.approx(want.sort_index().to_numpy(), nan_ok=True)

    saved.per_split[0]["alignment"]["srcc"] += 0.01
    with pytest.raises(ValueError, match="does not reproduce"):
        add_robustness(cfg, data, splits, saved, ratios=(0.9,))
    with pytest.raises(ValueError, match="cannot add robustness"):
        add_robustness(cfg.replace(name="other"), data, splits, saved, ratios=(0.9,))


def test_robustness_changes_are_measured_against_the_original_scores(tmp_path: Path, data) -> None:
    """``mean_abs_change`` is the mean |view score - original score| of the same images, ``abs_change_per_std``
    that over the spread of the original scores."""
    import numpy as np

    from agiqa.train import probes
    from agiqa.train.setup import prepare

    cfg = tiny.train_config(tmp_path, "tiny-robust-table", 0.25, epochs=1, batch_size=8, lr=0.02)
    setup = prepare(cfg, data)
    split = make_splits(data, n=1, test_ratio=0.34, seed=0)[0]
    rows = [setup.table.row[x] for x in split.test]
    table = probes.robustness_table(setup.bank, rows, split.apply(data)[1], (0.9,), 0)
    value = table.set_index(["perturbation", "dimension", "metric"])["value"]
    base, view = setup.bank.prediction_frame(rows), probes._view_predictions(setup.bank, rows, 0.9)
    for dim in ("quality", "alignment"):
        change = np.mean(np.abs(view[dim].to_numpy() - base[dim].to_numpy()))
        assert change > 0 and value[("HF&CC(0.90)", dim, "mean_abs_change")] == pytest.approx(change)
        assert value[("HF&CC(0.90)", dim, "abs_change_per_std")] == pytest.approx(change / np.std(base[dim]))
        assert value[("ORG", dim, "abs_change_per_std")] == 0.0

    constant = base.assign(quality=1.0, alignment=2.0)  # an untrained head: no spread to measure the change in
    setup.bank.prediction_frame = lambda rows: constant
    flat = probes.robustness_table(setup.bank, rows, split.apply(data)[1], (), 0)
    assert flat.query("metric == 'abs_change_per_std'")["value"].isna().all()
