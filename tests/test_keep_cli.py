"""`agiqa score --percentiles --keep ...` through the real CLI: the columns, the kept rows, the placed images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agiqa.api import Reference, load
from agiqa.cli import app
from scoring_fixtures import write_images, write_tiny_model
from test_reference import add_reference

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reference]:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-ref"))
    reference = add_reference(folder, write_images(tmp_path_factory.mktemp("ref-imgs"), 12))
    return folder, reference


@pytest.fixture()
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # image paths stay relative, as a user types them
    write_images(tmp_path / "imgs", 8)
    return Path("imgs")


def _run(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_percentiles_and_keep_write_what_they_say(model: tuple[Path, Reference], images: Path) -> None:
    folder, reference = model
    (images / "broken.png").write_bytes(b"")
    code, output = _run(
        "score", images, "--prompt", "a cat", "--model", folder, "--out", "s.csv", "--workers", "0",
        "--percentiles", "--keep", "not quality < p50", "--kept-out", "kept.jsonl", "--copy-to", "best",
    )  # fmt: skip
    assert code == 1, output  # the broken image fails the run, as without --keep
    frame = pd.read_csv("s.csv", keep_default_na=False)
    assert list(frame.columns) == [
        "image", "prompt", "model", "quality", "alignment", "quality_pct", "alignment_pct", "error", "warning", "kept"
    ]  # fmt: skip
    ok = frame[frame["error"] == ""]
    quality = ok["quality"].astype(float).to_numpy()
    np.testing.assert_allclose(ok["quality_pct"].astype(float), reference.percentile("quality", quality), atol=1e-9)
    expected = quality >= reference.value("quality", 50)
    assert ok["kept"].tolist() == expected.tolist() and expected.any() and not expected.all()
    broken = frame[frame["image"].str.endswith("broken.png")].iloc[0]
    assert broken["error"] and not broken["kept"]  # never kept, though a missing score is not "quality < p50"
    kept = pd.read_json("kept.jsonl", lines=True)
    assert kept["image"].tolist() == ok["image"][expected].tolist() and kept["kept"].all()
    placed = sorted(p.as_posix() for p in Path("best").rglob("*.jpg"))
    assert placed == sorted(f"best/{name}" for name in kept["image"])
    for name in kept["image"]:
        assert Path("best", name).read_bytes() == Path(name).read_bytes()
    assert f"kept {int(expected.sum())} of 9 rows" in output


def test_link_to_and_a_rerun_over_the_same_folder(model: tuple[Path, Reference], images: Path) -> None:
    folder, _ = model
    base = ("score", images, "--prompt", "a cat", "--model", folder, "--workers", "0", "--keep", "quality>=0")
    code, output = _run(*base, "--out", "a.csv", "--link-to", "links")
    assert code == 0, output
    links = sorted(Path("links").rglob("*.jpg"))
    assert len(links) == 8 and all(p.is_symlink() and Path(os.readlink(p)).is_absolute() for p in links)
    assert links[0].resolve() == (images / links[0].name).resolve()
    code, output = _run(*base, "--out", "b.csv", "--link-to", "links")
    assert code == 0, output  # the same links again: left as they are
    Path("copies/imgs").mkdir(parents=True)
    Path("copies/imgs/img_000.jpg").write_bytes(b"something else")
    code, output = _run(*base, "--out", "c.csv", "--copy-to", "copies")
    assert code == 1 and "copies/imgs/img_000.jpg exists with other content" in output


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--keep", "quality >= high"], "--keep: expected a number or a percentile like p60, found 'high' (column 12)"),
        (["--keep", "sharpness>1"], "unknown dimension 'sharpness'"),
        (["--kept-out", "k.csv"], "need --keep EXPR"),
        (["--keep", "quality>1", "--copy-to", "x", "--link-to", "y"], "not both"),
        (["--keep", "quality>1", "--kept-out", "s.csv"], "is the --out file"),
        (["--keep", "quality>1", "--kept-out", "k.txt"], "unsupported extension '.txt'"),
    ],
)
def test_bad_options_stop_before_scoring(
    model: tuple[Path, Reference], images: Path, extra: list[str], says: str
) -> None:
    code, output = _run("score", images, "--prompt", "a cat", "--model", model[0], "--out", "s.csv", *extra)
    assert code == 2, output
    assert says in " ".join(output.split())
    assert not Path("s.csv").exists() and not Path("s.csv.partial").exists()


def test_a_model_without_reference_refuses_percentiles(tmp_path: Path, images: Path) -> None:
    plain = write_tiny_model(tmp_path / "plain")
    for extra in (["--percentiles"], ["--keep", "quality>=p60"]):
        code, output = _run("score", images, "--prompt", "a cat", "--model", plain, "--out", "s.csv", *extra)
        assert code == 2 and "reference distribution" in output, output
    code, output = _run("score", images, "--prompt", "a", "--model", plain, "--out", "s.csv", "--keep", "quality>0.5")
    assert code == 0, output  # absolute thresholds need no reference
    assert "kept" in pd.read_csv("s.csv").columns


def test_input_columns_that_clash_are_refused(model: tuple[Path, Reference], images: Path) -> None:
    pd.DataFrame({"image": ["imgs/img_000.jpg"], "prompt": ["a"], "kept": ["yes"]}).to_csv("t.csv", index=False)
    code, output = _run("score", "--input", "t.csv", "--model", model[0], "--out", "s.csv", "--keep", "quality>0")
    assert code == 2 and "column(s) ['kept']" in output, output


def test_python_scores_agree_with_the_table(model: tuple[Path, Reference], images: Path) -> None:
    folder, _ = model
    code, output = _run("score", images, "--prompt", "a cat", "--model", folder, "--out", "s.parquet", "--percentiles")
    assert code == 0, output
    table = pd.read_parquet("s.parquet")
    assert table["quality_pct"].dtype == np.float64
    result = load(str(folder)).score(sorted(images.glob("*.jpg")), "a cat", percentiles=True)
    np.testing.assert_allclose(table["quality_pct"], result.percentiles["quality"], atol=1e-6)
