"""Grouped, seeded splits stored as files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agiqa.cli import app
from agiqa.data.sample import Dataset, PreferencePair, Sample
from agiqa.data.splits import Split, SplitError, load_splits, make_splits, save_splits


def mos_dataset(n_groups: int = 50, name: str = "toy") -> Dataset:
    """Groups of 6 to 14 images (uneven, like real benchmarks)."""
    samples = [
        Sample(f"/x/g{g}_{i}.jpg", f"prompt {g}", f"g{g}_{i}.jpg", labels={"quality": float(i)})
        for g in range(n_groups)
        for i in range(6 + g % 9)
    ]
    return Dataset(name, Path("/x"), samples, dimensions=("quality",))


def pair_dataset(n_groups: int = 30) -> Dataset:
    pairs = [
        PreferencePair(f"prompt {g}", f"{g}_{a}.png", f"{g}_{b}.png", 1.0, f"{g}_{a}.png", f"{g}_{b}.png")
        for g in range(n_groups)
        for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    return Dataset("pairs", Path("/y"), pairs=pairs)


def _group_of(ds: Dataset) -> dict[str, str]:
    return {s.image_id: s.group_id for s in ds.samples} | {i: p.group_id for p in ds.pairs for i in (p.id_a, p.id_b)}


def test_no_group_on_both_sides_and_every_image_once() -> None:
    ds = mos_dataset()
    group = _group_of(ds)
    for split in make_splits(ds, n=10):
        train_groups = {group[i] for i in split.train}
        test_groups = {group[i] for i in split.test}
        assert not train_groups & test_groups
        assert sorted(split.train + split.test) == sorted(group)
        assert len(test_groups) == 10  # round(0.2 * 50) prompts


def test_four_to_one_ratio_within_tolerance() -> None:
    for split in make_splits(mos_dataset(), n=10):
        share = len(split.test) / (len(split.train) + len(split.test))
        assert 0.13 < share < 0.27


def test_same_seed_same_files_different_seed_or_repeat_differs(tmp_path: Path) -> None:
    ds = mos_dataset()
    a = save_splits(make_splits(ds, seed=7), tmp_path / "a.json")
    b = save_splits(make_splits(ds, seed=7), tmp_path / "b.json")
    c = save_splits(make_splits(ds, seed=8), tmp_path / "c.json")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    splits = make_splits(ds, seed=7)
    assert len({s.test for s in splits}) == 10
    # Repeat k does not depend on how many repeats were asked for.
    assert make_splits(ds, n=3, seed=7)[2] == splits[2]


def test_split_file_is_stable_across_runs() -> None:
    """Pins the generator: a change of algorithm would silently change every published split."""
    first = make_splits(mos_dataset(), n=1, seed=0)[0]
    groups = sorted({i.split("_")[0] for i in first.test}, key=lambda g: int(g[1:]))
    assert groups == ["g0", "g2", "g13", "g15", "g17", "g22", "g23", "g28", "g35", "g48"]


def test_reload_round_trip_and_file_content(tmp_path: Path) -> None:
    ds = mos_dataset()
    splits = make_splits(ds, n=4, test_ratio=0.25, seed=3)
    path = save_splits(splits, tmp_path / "sub" / "splits.json")
    doc = json.loads(path.read_text())
    assert (doc["dataset"], doc["seed"], doc["test_ratio"], doc["n"]) == ("toy", 3, 0.25, 4)
    assert set(doc["splits"][0]) == {"repeat", "train", "test"}
    assert load_splits(path, ds) == splits
    train, test = splits[0].apply(ds)
    assert {s.image_id for s in test.samples} == set(splits[0].test)
    assert len(train) + len(test) == len(ds)


def test_stale_split_file_names_the_file_and_the_ids(tmp_path: Path) -> None:
    path = save_splits(make_splits(mos_dataset(), n=2), tmp_path / "splits.json")
    smaller = mos_dataset(n_groups=40)
    with pytest.raises(SplitError, match=r"splits\.json.*not in dataset 'toy'.*'g4[0-9]_0\.jpg'.*agiqa splits make"):
        load_splits(path, smaller)
    with pytest.raises(SplitError, match="made for dataset 'toy', not 'other'"):
        load_splits(path, mos_dataset(name="other"))
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(SplitError, match=r"bad\.json: not an agiqa split file"):
        load_splits(tmp_path / "bad.json")


def test_pair_datasets_split_by_prompt() -> None:
    ds = pair_dataset()
    group = _group_of(ds)
    for split in make_splits(ds, n=5):
        assert not {group[i] for i in split.train} & {group[i] for i in split.test}
        train, test = split.apply(ds)
        assert len(train.pairs) + len(test.pairs) == len(ds.pairs)
        assert len(test.pairs) == 3 * 6


def test_bad_requests() -> None:
    with pytest.raises(SplitError, match="test_ratio"):
        make_splits(mos_dataset(), test_ratio=1.0)
    with pytest.raises(SplitError, match="at least two"):
        make_splits(mos_dataset(n_groups=1))
    shared = Dataset(
        "shared",
        Path("/z"),
        [Sample("a.jpg", "p1", "a.jpg"), Sample("a.jpg", "p2", "a.jpg"), Sample("b.jpg", "p2", "b.jpg")],
    )
    with pytest.raises(SplitError, match="'a.jpg' belongs to groups 'p1' and 'p2'"):
        make_splits(shared)
    with pytest.raises(SplitError, match="repeat 0 names 1 image id"):
        Split("toy", 0, 0, 0.2, ("nope.jpg",), ()).apply(mos_dataset())


def test_splits_make_command_on_real_agiqa3k(agiqa3k_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "agiqa3k_splits.json"
    result = CliRunner().invoke(app, ["splits", "make", "agiqa3k", "--root", str(agiqa3k_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "240 groups" in result.output
    from agiqa.data import load_dataset

    splits = load_splits(out, load_dataset("agiqa3k", agiqa3k_root))
    assert len(splits) == 10
    assert all(len(s.train) + len(s.test) == 2386 for s in splits)
