"""``agiqa datasets list|validate`` and ``agiqa mos`` through typer's CliRunner, exit codes included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agiqa.cli import app

runner = CliRunner()
HEADER = "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align\n"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def small3k(tmp_path: Path) -> Path:
    from PIL import Image

    (tmp_path / "images").mkdir()
    rows = ["a.jpg,a cat,,,,1,0.1,2,0.2", "b.jpg,a dog,,,,3,0.1,4,0.2", "c.jpg,a dog,,,,x,0.1,4,0.2"]
    (tmp_path / "data.csv").write_text(HEADER + "\n".join(rows) + "\n")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / name)
    return tmp_path


def test_list_shows_every_reader() -> None:
    code, out = run("datasets", "list")
    assert code == 0
    for name in ("agiqa3k", "agiqa1k", "aigciqa2023", "imagereward", "pickapic", "hpdv2", "generic"):
        assert name in out
    assert "quality, alignment" in out


def test_validate_usable_with_warnings(small3k: Path) -> None:
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(small3k))
    assert code == 0, out
    assert "samples" in out and "bad-label" in out and "data.csv row 4" in out and "usable with 1 warning" in out
    code, _ = run("datasets", "validate", "agiqa3k", "--root", str(small3k), "--strict")
    assert code == 1


def test_validate_missing_image_then_no_images(small3k: Path) -> None:
    (small3k / "images" / "a.jpg").unlink()
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(small3k))
    assert code == 0 and "missing-image" in out and "a.jpg" in out
    for name in ("b.jpg", "c.jpg"):
        (small3k / "images" / name).unlink()
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(small3k))
    assert code == 1 and "no-images" in out and "UNUSABLE" in out
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(small3k), "--labels-only")
    assert code == 0, out


def test_validate_fatal_and_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("name,prompt\nx.jpg,p\n")
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(tmp_path))
    assert code == 1 and "missing column" in out and "mos_quality" in out and "data.csv" in out
    (tmp_path / "data.csv").write_text(HEADER + "x.jpg,p,,,,,,,\n")
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(tmp_path), "--labels-only")
    assert code == 1 and "nothing was loaded" in out
    code, out = run("datasets", "validate", "agiqa3x", "--root", str(tmp_path))
    assert code == 2 and "agiqa3k" in out
    code, out = run("datasets", "validate", "agiqa3k", "--root", str(tmp_path), "-o", "split=x")
    assert code == 2 and "no option 'split'" in out


def test_validate_reader_option(tmp_path: Path) -> None:
    pd.DataFrame({"Image": ["deepai_0_0_0_0.jpg"], "Score": [2.0]}).to_csv(tmp_path / "AIGC_all.csv", index=False)
    code, out = run("datasets", "validate", "agiqa1k", "--root", str(tmp_path), "--labels-only", "-o", "labels=all")
    assert code == 0 and "missing-label" in out


def test_validate_real_label_files(labels_root: Path) -> None:
    code, out = run("datasets", "validate", "agiqa1k", "--root", str(labels_root / "agiqa1k"))
    assert code == 1 and "1078" in out and "missing-image" in out and "and 1075 more" in out
    code, out = run("datasets", "validate", "agiqa1k", "--root", str(labels_root / "agiqa1k"), "--labels-only")
    assert code == 0 and "duplicate" in out and "missing-label" in out


def test_mos_command(tmp_path: Path) -> None:
    rows = [
        (s, f"i{j}", r) for s, rs in {"A": [1, 2, 3], "B": [6, 2, 4], "C": [3, 3, 3]}.items() for j, r in enumerate(rs)
    ]
    pd.DataFrame(rows, columns=["subject", "image", "rating"]).to_csv(tmp_path / "r.csv", index=False)
    code, out = run("mos", str(tmp_path / "r.csv"), "--out", str(tmp_path / "mos.csv"))
    assert code == 0, out
    assert "rejected 1 subject" in out and "rejected C (constant)" in out and "33.3% of subjects" in out
    mos = pd.read_csv(tmp_path / "mos.csv")
    assert mos["mos"].round(3).tolist() == [50.0, 41.667, 58.333]
    (tmp_path / "bad.csv").write_text("subject,image,score\nA,i0,1\n")
    code, out = run("mos", str(tmp_path / "bad.csv"))
    assert code == 1 and "bad.csv" in out and "'rating'" in out
