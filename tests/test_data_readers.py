"""Every reader on small synthetic layouts in tmp_path, including the bad-input cases."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from agiqa.data import DatasetError, load_dataset
from agiqa.data.readers.hpdv2 import read_hpd_benchmark_prompts


def png(path: Path | None = None, color: int = 0) -> bytes:
    """A tiny PNG, written to ``path`` when given."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (color, 0, 0)).save(buf, format="PNG")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


AGIQA3K_HEADER = "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"


def agiqa3k(root: Path, rows: list[str], images: str | None = "images") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.csv").write_text(AGIQA3K_HEADER + "".join(r + "\n" for r in rows))
    if images is not None:
        for r in rows:
            png(root / images / r.split(",")[0])
    return root


# --- registry / load_dataset ----------------------------------------------------------------------


def test_load_dataset_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="Did you mean 'agiqa3k'"):
        load_dataset("agiqa3", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("agiqa3k", tmp_path / "nope")
    with pytest.raises(TypeError, match="no option 'splt'.*check_images"):
        load_dataset("agiqa3k", tmp_path, splt="x")


# --- AGIQA-3K -------------------------------------------------------------------------------------


@pytest.mark.parametrize("images", ["images", ""])
def test_agiqa3k_layouts(tmp_path: Path, images: str) -> None:
    root = agiqa3k(
        tmp_path / "a3k",
        ["a_normal_000.jpg,a cat,,,,1.5,0.2,2.5,0.3", "b_low_000.jpg,a cat,red,,,3,.1,1,.2"],
        images,
    )
    ds = load_dataset("agiqa3k", root, check_images=True)
    assert ds.problems == [] and len(ds) == 2 and ds.prompts == ["a cat"]
    assert ds.samples[1].labels == {"quality": 3.0, "alignment": 1.0} and ds.samples[1].meta["adj1"] == "red"
    assert Path(ds.samples[0].image) == root / images / "a_normal_000.jpg"


def test_agiqa3k_missing_column_names_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("name,prompt,mos_quality,std_quality,std_align\nx.jpg,p,1,1,1\n")
    with pytest.raises(DatasetError, match=r"data\.csv: missing column 'mos_align'"):
        load_dataset("agiqa3k", tmp_path)


def test_agiqa3k_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.csv"):
        load_dataset("agiqa3k", tmp_path)


def test_agiqa3k_bad_rows_and_images(tmp_path: Path) -> None:
    root = agiqa3k(
        tmp_path,
        [
            "ok.jpg,p,,,,1,1,1,1",
            "empty.jpg,p,,,,,1,1,1",
            "text.jpg,p,,,,abc,1,1,1",
            "dup.jpg,q,,,,1,1,1,1",
            "dup.jpg,q,,,,2,1,1,1",
            "gone.jpg,q,,,,1,1,1,1",
            "broken.jpg,q,,,,1,1,1,1",
        ],
    )
    (root / "images" / "gone.jpg").unlink()
    (root / "images" / "broken.jpg").write_bytes(b"not an image")
    ds = load_dataset("agiqa3k", root, check_images=True)
    assert [s.image_id for s in ds.samples] == ["ok.jpg", "gone.jpg", "broken.jpg"]
    bad = [p for p in ds.problems if p.kind == "bad-label"]
    assert [p.where for p in bad] == ["data.csv row 3", "data.csv row 4"]
    assert "mos_quality='abc'" in bad[1].message
    assert [p.where for p in ds.problems if p.kind == "duplicate"] == ["data.csv row 5, data.csv row 6"]
    missing = [p for p in ds.problems if p.kind == "missing-image"]
    assert [p.where for p in missing] == [str(root / "images" / "gone.jpg")]
    assert [p.where for p in ds.problems if p.kind == "unreadable-image"] == [str(root / "images" / "broken.jpg")]
    assert ds.usable  # warnings only


def test_agiqa3k_no_images_is_fatal_only_when_checked(tmp_path: Path) -> None:
    root = agiqa3k(tmp_path, ["a.jpg,p,,,,1,1,1,1"], images=None)
    assert load_dataset("agiqa3k", root).usable
    ds = load_dataset("agiqa3k", root, check_images=True)
    assert not ds.usable and ds.problem_counts() == {"missing-image": 1, "no-images": 1}


# --- AGIQA-1K -------------------------------------------------------------------------------------


def test_agiqa1k_xlsx_with_images(tmp_path: Path) -> None:
    names = [f"deepai_0_0_{p}_{s}.jpg" for p in "01" for s in "01"]
    pd.DataFrame({"Image": names, "Prompt": ["a, b"] * 4, "MOS": [1, 2, 3, 4]}).to_excel(
        tmp_path / "AIGC_MOS_Zscore.xlsx", index=False
    )
    for n in names:
        png(tmp_path / "file" / n)
    ds = load_dataset("agiqa1k", tmp_path, check_images=True)
    assert ds.problems == [] and [s.labels["quality"] for s in ds.samples] == [1, 2, 3, 4]


def test_agiqa1k_csv_alone_has_no_prompts(tmp_path: Path) -> None:
    names = [f"dreamStudio_1_2_{p}_{s}.jpg" for p in "01" for s in "01"]
    pd.DataFrame({"Image": names[:3] + ["dreamStudio_1_2_1.jpg"], "Score": [1, 2, "", 4]}).to_csv(
        tmp_path / "AIGC_all.csv", index=False
    )
    ds = load_dataset("agiqa1k", tmp_path)
    kinds = sorted(p.kind for p in ds.problems)
    assert kinds == ["bad-label", "bad-name", "missing-label", "missing-prompt"]
    assert len(ds) == 2 and all(s.prompt == "" for s in ds.samples)
    assert "dreamStudio_1_2_1_1.jpg" in next(p.message for p in ds.problems if p.kind == "bad-name")
    with pytest.raises(ValueError, match="labels='x'"):
        load_dataset("agiqa1k", tmp_path, labels="x")
    with pytest.raises(FileNotFoundError, match="AIGC_MOS_Zscore.xlsx"):
        load_dataset("agiqa1k", tmp_path, labels="zscore")


# --- AIGCIQA2023 ----------------------------------------------------------------------------------


def aigc_index(root: Path) -> None:
    """6 images: two generators x prompt 0 (images 1, 2) and prompt 1 (image 1)."""
    pd.DataFrame([["Basic", "Animals", "a corgi"], ["Complex", "People", "two people "]]).to_excel(
        root / "AIGCIQA2023_Prompts.xlsx", header=False, index=False
    )
    rows = [[g, n] for g in ("Glide", "DALLE") for n in ("000-1.png", "000-2.png", "001-1.png")]
    pd.DataFrame(rows).to_excel(root / "pic-index.xlsx", header=False, index=False)


def test_aigciqa2023_official_mat_layout(tmp_path: Path) -> None:
    aigc_index(tmp_path)
    mos = np.arange(6, dtype=float)[:, None]  # MATLAB column vectors
    for k in (1, 2, 3):
        (tmp_path / "DATA" / "MOS").mkdir(parents=True, exist_ok=True)
        (tmp_path / "DATA" / "STD").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(tmp_path / "DATA" / "MOS" / f"mosz{k}.mat", {"MOSz": mos * k})
        scipy.io.savemat(tmp_path / "DATA" / "STD" / f"SD{k}.mat", {"SD": mos / 10 + k})
    for i in range(6):
        png(tmp_path / "Image" / "allimg" / f"{i}.png")
    ds = load_dataset("aigciqa2023", tmp_path, check_images=True)
    assert ds.problems == [] and len(ds) == 6 and ds.prompts == ["a corgi", "two people"]
    s = ds.samples[5]
    assert s.labels == {"quality": 5.0, "authenticity": 10.0, "correspondence": 15.0}
    assert s.stds["correspondence"] == pytest.approx(3.5)
    assert (s.prompt, s.meta["generator"], s.meta["class"]) == ("two people", "DALLE", "People")


def test_aigciqa2023_mat_errors(tmp_path: Path) -> None:
    aigc_index(tmp_path)
    (tmp_path / "DATA" / "MOS").mkdir(parents=True)
    (tmp_path / "DATA" / "STD").mkdir(parents=True)
    for k in (1, 2, 3):
        scipy.io.savemat(tmp_path / "DATA" / "MOS" / f"mosz{k}.mat", {"MOS": np.ones(6)})
        scipy.io.savemat(tmp_path / "DATA" / "STD" / f"SD{k}.mat", {"SD": np.ones(6)})
    with pytest.raises(DatasetError, match=r"mosz1\.mat: missing variable 'MOSz' \(found MOS\)"):
        load_dataset("aigciqa2023", tmp_path, source="mat")
    for k in (1, 2, 3):
        scipy.io.savemat(tmp_path / "DATA" / "MOS" / f"mosz{k}.mat", {"MOSz": np.ones(6 if k < 3 else 5)})
    with pytest.raises(DatasetError, match="different numbers of images"):
        load_dataset("aigciqa2023", tmp_path)
    (tmp_path / "DATA" / "STD" / "SD2.mat").unlink()
    with pytest.raises(FileNotFoundError, match="SD2.mat"):
        load_dataset("aigciqa2023", tmp_path)


def test_aigciqa2023_csv_checked_against_index(tmp_path: Path) -> None:
    aigc_index(tmp_path)
    prompts = ["a corgi", "a corgi", "two people ", "a corgi", "a corgi", "a dog"]
    cols = {f"{d}_{k}": [1.0] * 6 for k in ("mos", "std") for d in ("quality", "authenticity", "correspondence")}
    df = pd.DataFrame({"name": [f"{i}.png" for i in range(6)], "prompt": prompts, **cols})
    df.loc[1, "quality_mos"] = None
    df.to_csv(tmp_path / "AIGCIQA2023.csv")
    ds = load_dataset("aigciqa2023", tmp_path)
    assert len(ds) == 5
    assert ds.problem_counts() == {"bad-label": 1, "whitespace": 1, "mismatch": 1}
    assert next(p for p in ds.problems if p.kind == "mismatch").where == "image 5"


# --- ImageReward / HPD v2 -------------------------------------------------------------------------


def test_imagereward_rankings_to_pairs(tmp_path: Path) -> None:
    gens = [f"part-1/images/0/{k}.webp" for k in "abcd"]
    data = [
        {"id": "1-0", "prompt": "a cat", "generations": gens, "ranking": [1, 2, 2, 4]},
        {"id": "2-0", "prompt": "a dog", "generations": gens[:2], "ranking": [1]},
    ]
    (tmp_path / "test.json").write_text(json.dumps(data))
    for g in gens:
        png(tmp_path / "images" / g)
    ds = load_dataset("imagereward", tmp_path, check_images=True)
    got = {(p.id_a[-6], p.id_b[-6], p.label) for p in ds.pairs}
    assert got == {("a", "b", 1.0), ("a", "c", 1.0), ("a", "d", 1.0), ("b", "d", 1.0), ("c", "d", 1.0)}
    assert [s.rank for s in ds.samples] == [1, 2, 2, 4] and {s.group for s in ds.samples} == {"1-0"}
    assert Path(ds.samples[0].image) == tmp_path / "images" / gens[0]
    assert [(p.kind, p.where) for p in ds.problems] == [("bad-label", "test.json entry 1")]


def test_imagereward_missing_key(tmp_path: Path) -> None:
    (tmp_path / "test.json").write_text(json.dumps([{"id": "1", "prompt": "p", "generations": ["a.png"]}]))
    with pytest.raises(DatasetError, match=r"test\.json: missing column 'ranking'"):
        load_dataset("imagereward", tmp_path)


def test_hpdv2_zero_based_ranks_and_benchmark_prompts(tmp_path: Path) -> None:
    data = [
        {
            "prompt": "a cat",
            "image_path": ["x.jpg", "y.jpg", "z.jpg"],
            "rank": [0, 2, 1],
            "raw_annotations": [],
        }
    ]
    (tmp_path / "test.json").write_text(json.dumps(data))
    for n in ("x.jpg", "y.jpg", "z.jpg"):
        png(tmp_path / "test" / n)
    ds = load_dataset("hpdv2", tmp_path, check_images=True)
    assert ds.problems == [] and [s.rank for s in ds.samples] == [1, 3, 2]
    assert {(p.id_a, p.id_b, p.label) for p in ds.pairs} == {
        ("x.jpg", "y.jpg", 1.0),
        ("x.jpg", "z.jpg", 1.0),
        ("y.jpg", "z.jpg", 0.0),
    }
    bench = tmp_path / "benchmark"
    bench.mkdir()
    for style in ("anime", "concept-art", "paintings", "photo", "drawbench"):
        (bench / f"{style}.json").write_text(json.dumps([f"{style} 1", f"{style} 2"]))
    suites = read_hpd_benchmark_prompts(tmp_path)
    assert list(suites) == ["anime", "concept-art", "paintings", "photo", "drawbench"]
    assert suites["photo"] == ["photo 1", "photo 2"] and read_hpd_benchmark_prompts(bench) == suites
    (bench / "photo.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DatasetError, match="photo.json"):
        read_hpd_benchmark_prompts(tmp_path)
    (bench / "photo.json").unlink()
    with pytest.raises(FileNotFoundError, match="photo.json"):
        read_hpd_benchmark_prompts(tmp_path)


# --- Pick-a-Pic -----------------------------------------------------------------------------------


def pickapic_rows(n: int, labels: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "caption": [f"prompt {i}" for i in range(n)],
            "jpg_0": [png(color=i) for i in range(n)],
            "jpg_1": [png(color=100 + i) for i in range(n)],
            "label_0": [a for a, _ in labels],
            "label_1": [b for _, b in labels],
            "image_0_uid": [f"u{i}a" for i in range(n)],
            "image_1_uid": [f"u{i}b" for i in range(n)],
        }
    )


def test_pickapic_splits_ties_and_bad_labels(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = pickapic_rows(4, [(1, 0), (0, 1), (0.5, 0.5), (0.3, 0.3)])
    rows.loc[1, "jpg_1"] = b"broken"
    rows.to_parquet(data / "test_unique-00000-of-00001-abc.parquet")
    pickapic_rows(1, [(1, 0)]).to_parquet(data / "validation_unique-00000-of-00001.parquet")
    ds = load_dataset("pickapic", tmp_path, check_images=True)
    assert [p.label for p in ds.pairs] == [1.0, 0.0, 0.5] and ds.pairs[2].is_tie
    assert (ds.pairs[0].id_a, ds.pairs[0].prompt, ds.pairs[0].image_a) == ("u0a", "prompt 0", png(color=0))
    assert len(ds.samples) == 6
    kinds = {p.kind: p for p in ds.problems}
    assert set(kinds) == {"bad-label", "unreadable-image"}
    assert kinds["bad-label"].where.endswith("parquet entry 3") and kinds["unreadable-image"].where == "u1b"
    assert len(load_dataset("pickapic", tmp_path, split="validation_unique").pairs) == 1


def test_pickapic_missing_split_or_column(tmp_path: Path) -> None:
    pickapic_rows(1, [(1, 0)]).drop(columns="label_1").to_parquet(tmp_path / "test_unique.parquet")
    with pytest.raises(FileNotFoundError, match="split 'validation_unique'.*test_unique.parquet"):
        load_dataset("pickapic", tmp_path, split="validation_unique")
    with pytest.raises(DatasetError, match=r"test_unique\.parquet: missing column 'label_1'"):
        load_dataset("pickapic", tmp_path)


# --- generic --------------------------------------------------------------------------------------


def test_generic_csv_table(tmp_path: Path) -> None:
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "b.png")
    (tmp_path / "labels.csv").write_text(
        "image,prompt,quality,quality_std,realism,notes\n"
        "imgs/a.png,a cat,1.5,0.1,3,fine\nimgs/b.png,a dog,2.5,0.2,4,\nimgs/c.png,a cow,,0.1,2,lost\n"
    )
    ds = load_dataset("generic", tmp_path, check_images=True)  # the folder's only table
    assert ds.dimensions == ("quality", "realism") and len(ds) == 2
    assert ds.samples[0].labels == {"quality": 1.5, "realism": 3.0} and ds.samples[0].stds == {"quality": 0.1}
    assert ds.samples[0].meta["notes"] == "fine" and Path(ds.samples[1].image) == tmp_path / "imgs" / "b.png"
    assert [(p.kind, p.where) for p in ds.problems] == [("bad-label", "labels.csv row 4")]
    only = load_dataset("generic", tmp_path / "labels.csv", dimensions=["realism"])
    assert only.dimensions == ("realism",) and len(only) == 3


def test_generic_jsonl_and_folder(tmp_path: Path) -> None:
    rows = [
        {"image": "a.png", "prompt": "p", "score": 0.5, "group": "g1"},
        {"image": "b.png", "prompt": "", "score": 1},
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_dataset("generic", tmp_path / "t.jsonl")
    assert [s.labels for s in ds.samples] == [{"score": 0.5}, {"score": 1.0}]
    assert ds.samples[0].group_id == "g1" and [p.kind for p in ds.problems] == ["missing-prompt"]
    rows[1]["rank"], rows[0]["rank"] = "first", 2
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ranked = load_dataset("generic", tmp_path / "t.jsonl")
    assert [s.rank for s in ranked.samples] == [2] and ranked.problems[0].where == "t.jsonl line 2"
    png(tmp_path / "shots" / "x.png")
    png(tmp_path / "shots" / "sub" / "y.png")
    folder = load_dataset("generic", tmp_path / "shots", prompt="a red cube")
    assert [s.image_id for s in folder.samples] == ["sub/y.png", "x.png"] and folder.prompts == ["a red cube"]


def test_generic_errors(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("image,score\na.png,1\n")
    with pytest.raises(DatasetError, match=r"t\.csv: missing column 'prompt'"):
        load_dataset("generic", tmp_path / "t.csv")
    (tmp_path / "u.csv").write_text("image,prompt\n")
    with pytest.raises(DatasetError, match="exactly one table"):
        load_dataset("generic", tmp_path)
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset("generic", tmp_path / "u.csv")
    with pytest.raises(DatasetError, match="no image files"):
        load_dataset("generic", tmp_path, prompt="p")
