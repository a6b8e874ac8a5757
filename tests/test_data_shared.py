"""The readers on the real label files and AGIQA-3K images in ../shared/data (skipped when absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from agiqa.data import load_dataset


def test_agiqa3k_counts_and_labels(agiqa3k_root: Path) -> None:
    ds = load_dataset("agiqa3k", agiqa3k_root)
    assert len(ds) == 2386 and len(ds.prompts) == 240
    assert ds.dimensions == ("quality", "alignment") and ds.problems == [] and ds.usable
    first = ds.samples[0]
    assert first.image_id == "AttnGAN_normal_000.jpg" and first.prompt == "statue of a man"
    assert first.labels["quality"] == 0.965602553 and first.stds["alignment"] == 0.615607722
    assert Counter(s.meta["generator"] for s in ds.samples)["DALLE2_normal"] == 232
    assert all(0 <= s.labels["quality"] <= 5 for s in ds.samples)


def test_agiqa3k_image_headers(agiqa3k_root: Path) -> None:
    ds = load_dataset("agiqa3k", agiqa3k_root, check_images=True)
    assert ds.problems == []


def test_imagereward_pairs(labels_root: Path) -> None:
    ds = load_dataset("imagereward", labels_root / "imagereward")
    assert len(ds.pairs) == 6399
    assert len({p.group_id for p in ds.pairs}) == 466 == len({s.group_id for s in ds.samples})
    assert len(ds.prompts) == 463  # three prompt texts appear under two ids each
    assert not any(p.is_tie for p in ds.pairs) and {p.label for p in ds.pairs} == {0.0, 1.0}
    assert all(s.rank is not None and s.rank >= 1 for s in ds.samples)
    assert ds.problems == []


def test_agiqa1k_xlsx_flaws(labels_root: Path) -> None:
    ds = load_dataset("agiqa1k", labels_root / "agiqa1k")
    assert len(ds) == 1078  # 1,080 rows minus both copies of the duplicate
    by_kind = {p.kind: p for p in ds.problems}
    assert set(by_kind) == {"duplicate", "missing-label"}
    assert "dreamStudio_8_9_1_1.jpg" in by_kind["duplicate"].message
    assert by_kind["duplicate"].where == "AIGC_MOS_Zscore.xlsx row 1080, AIGC_MOS_Zscore.xlsx row 1081"
    assert "dreamStudio_8_5_0_0.jpg" in by_kind["missing-label"].message
    assert "dreamStudio_8_9_1_1.jpg" not in {s.image_id for s in ds.samples}
    assert all(s.prompt for s in ds.samples)


def test_agiqa1k_csv_flaws(labels_root: Path) -> None:
    ds = load_dataset("agiqa1k", labels_root / "agiqa1k", labels="all")
    assert len(ds) == 1079
    by_kind = {p.kind: p for p in ds.problems}
    assert set(by_kind) == {"bad-name", "missing-label", "missing-prompt"}
    assert "'dreamStudio_8_9_1_.jpg'" in by_kind["bad-name"].message
    assert "did you mean 'dreamStudio_8_9_1_1.jpg'" in by_kind["bad-name"].message
    assert by_kind["bad-name"].where == "AIGC_all.csv row 117"
    assert "dreamStudio_8_9_1_1.jpg" in by_kind["missing-label"].message
    assert "dreamStudio_8_5_0_0.jpg" in by_kind["missing-prompt"].message


def test_agiqa1k_labels_only_images_reported(labels_root: Path) -> None:
    ds = load_dataset("agiqa1k", labels_root / "agiqa1k", check_images=True)
    counts = ds.problem_counts()
    assert counts["missing-image"] == 1078 and counts["no-images"] == 1
    assert not ds.usable and len(ds) == 1078


def test_aigciqa2023_merged_csv(labels_root: Path) -> None:
    ds = load_dataset("aigciqa2023", labels_root / "aigciqa2023")
    assert len(ds) == 2400 and len(ds.prompts) == 100
    assert ds.dimensions == ("quality", "authenticity", "correspondence")
    # pic-index + prompts xlsx agree with the CSV's prompts on every row: no "mismatch" problem
    assert ds.problem_counts() == {"whitespace": 2}
    assert Counter(s.meta["generator"] for s in ds.samples) == dict.fromkeys(
        ["Controlnet", "DALLE", "Glide", "Lafite", "stable-diffusion", "Unidiffuser"], 400
    )
    s = ds.samples[2001]
    assert (s.image_id, s.prompt, s.meta["generator"]) == ("2001.png", "a corgi", "Unidiffuser")
    assert s.image.endswith("Image/allimg/2001.png")
    assert all(p == p.strip() for p in ds.prompts)
