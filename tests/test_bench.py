"""`agiqa bench`: suites, image layouts, the statistics, and a whole bench with the tiny model through the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from agiqa.api import load, load_suite, run_bench
from agiqa.bench.layout import IdMatcher, folder_layout, table_layout
from agiqa.bench.stats import compare_generators
from agiqa.cli import app
from scoring_fixtures import write_images, write_tiny_model

runner = CliRunner()


# ---- suites -------------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_shipped_partiprompts_is_the_real_file(labels_root: Path) -> None:
    with open(labels_root / "partiprompts" / "PartiPrompts.tsv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    suite = load_suite("partiprompts")
    assert len(suite) == len(rows) == 1632
    assert suite.table["id"].tolist() == [str(k) for k in range(len(rows))]
    assert suite.table["prompt"].tolist() == [r["Prompt"] for r in rows]
    assert suite.table["category"].tolist() == [r["Category"] for r in rows]
    assert suite.table["challenge"].tolist() == [r["Challenge"] for r in rows]
    assert suite.groups == ("category", "challenge")
    assert any(p.startswith('"G I G G L E"') for p in suite.table["prompt"])  # quotes inside a prompt are kept


@pytest.mark.shared_data
def test_shipped_imagereward_is_the_real_file(labels_root: Path) -> None:
    real = json.loads((labels_root / "imagereward" / "benchmark-prompts.json").read_text())
    suite = load_suite("imagereward")
    assert suite.table["id"].tolist() == [r["id"] for r in real] and len(real) == 100
    assert suite.table["prompt"].tolist() == [r["prompt"] for r in real]


def test_suite_files_and_their_mistakes(tmp_path: Path) -> None:
    (tmp_path / "hps.json").write_text(json.dumps(["a cat", "a dog"]))
    assert load_suite(tmp_path / "hps.json").prompts == {"0": "a cat", "1": "a dog"}
    pd.DataFrame({"ID": ["a", "b"], "Prompt": ["x", "y"], "style": ["s", "t"]}).to_csv(tmp_path / "s.csv", index=False)
    suite = load_suite(tmp_path / "s.csv")
    assert suite.prompts == {"a": "x", "b": "y"} and suite.groups == ("style",)
    assert load_suite(tmp_path / "s.csv", groups=[]).groups == ()
    with pytest.raises(ValueError, match=r"no grouping column \['colour'\]; the suite has \['style'\]"):
        load_suite(tmp_path / "s.csv", groups=["colour"])
    pd.DataFrame({"id": ["a", "a"], "prompt": ["x", "y"]}).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match="dup.csv: id 'a' appears more than once"):
        load_suite(tmp_path / "dup.csv")
    pd.DataFrame({"id": ["a"], "text": ["x"]}).to_csv(tmp_path / "np.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'prompt' column"):
        load_suite(tmp_path / "np.csv")
    with pytest.raises(FileNotFoundError, match="Did you mean 'partiprompts'"):
        load_suite("partiprompt")


# ---- layouts ------------------------------------------------------------------------------------------------


def test_file_names_map_to_prompt_ids() -> None:
    match = IdMatcher(["0", "7", "12", "005695-0057", "cat"])
    cases = {
        "12": "12", "00012": "12", "12_3": "12", "00012-1": "12", "0": "0", "00000": "0", "007_2": "7",
        "005695-0057": "005695-0057", "005695-0057_1": "005695-0057", "005695-0057-4": "005695-0057",
        "cat": "cat", "cat_0": "cat", "13": None, "dog_1": None, "12_3_4": None, "x12": None,
    }  # fmt: skip
    assert {stem: match(stem) for stem in cases} == cases


def test_folder_and_table_layouts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for gen, names in {"a": ["00000.jpg", "00001.jpg"], "b": ["0_0.png", "0_1.png", "1_0.png", "zz.png"]}.items():
        (root / gen).mkdir(parents=True)
        for n in names:
            Image.new("RGB", (8, 8)).save(root / gen / n)
    Image.new("RGB", (8, 8)).save(root / "stray.png")
    layout = folder_layout(root, ["0", "1"])
    assert [(i.generator, i.prompt_id, i.name) for i in layout.images] == [
        ("a", "0", "a/00000.jpg"), ("a", "1", "a/00001.jpg"), ("b", "0", "b/0_0.png"), ("b", "0", "b/0_1.png"),
        ("b", "1", "b/1_0.png"),
    ]  # fmt: skip
    assert any("b: 1 images match no prompt id (zz.png)" in p for p in layout.problems)
    assert any("1 images directly in" in p for p in layout.problems)
    pd.DataFrame(
        {"generator": ["b", "a", "b"], "image": ["zz.png", "00000.jpg", "0_0.png"], "prompt_id": ["1", "0", "9"]}
    ).to_csv(tmp_path / "map.csv", index=False)
    mapped = table_layout(root, tmp_path / "map.csv", ["0", "1"])
    assert [(i.generator, i.prompt_id, i.file) for i in mapped.images] == [
        ("a", "0", root / "a" / "00000.jpg"), ("b", "1", root / "b" / "zz.png")
    ]  # fmt: skip
    assert "1 rows name prompt ids not in the suite ('9' ...)" in mapped.problems[0]


# ---- statistics ---------------------------------------------------------------------------------------------


def _scores() -> pd.DataFrame:
    rows = []
    # g1 beats g2 on every prompt; g3 ties g2 on prompt 0 and has no image of prompt 3; two samples of g1 on p1
    table = {"g1": [3.0, 2.0, 4.0, 5.0], "g2": [1.0, 1.5, 2.0, 2.5], "g3": [1.0, 3.0, 1.0, None]}
    for gen, values in table.items():
        for pid, v in enumerate(values):
            if v is not None:
                rows.append({"generator": gen, "prompt_id": str(pid), "quality": v, "error": ""})
    rows.append({"generator": "g1", "prompt_id": "1", "quality": 4.0, "error": ""})  # p1 of g1: mean of 2 and 4
    rows.append({"generator": "g2", "prompt_id": "0", "quality": float("nan"), "error": "image: not an image"})
    return pd.DataFrame(rows)


def test_means_intervals_ranks_and_win_rates() -> None:
    groups = pd.DataFrame({"kind": ["x", "x", "y", "y"]}, index=["0", "1", "2", "3"])
    stats = compare_generators(_scores(), {"quality": True}, groups, n_resamples=400)
    overall = stats.means[stats.means["group_column"] == "all"].set_index("generator")
    assert overall.loc["g1", "mean"] == pytest.approx(np.mean([3, 3, 4, 5]))
    assert overall.loc["g3", "mean"] == pytest.approx(np.mean([1, 3, 1]))
    assert (
        overall.loc["g1", "n_images"] == 5
        and overall.loc["g1", "n_prompts"] == 4
        and overall.loc["g3", "n_prompts"] == 3
    )
    assert overall.loc["g2", "n_images"] == 4  # the failed image is left out
    assert (overall["low"] <= overall["mean"]).all() and (overall["mean"] <= overall["high"]).all()
    assert overall.loc["g1", "low"] < overall.loc["g1", "high"]
    assert stats.ranking("quality") == ["g1", "g2", "g3"]  # g2: 1.75, g3: 1.67
    by_kind = stats.means[stats.means["group_column"] == "kind"].set_index(["group", "generator"])
    assert by_kind.loc[("y", "g3"), "mean"] == 1.0 and by_kind.loc[("y", "g3"), "n_prompts"] == 1
    assert by_kind.loc[("x", "g1"), "mean"] == pytest.approx(3.0)
    wins = stats.win_rates.set_index(["generator", "opponent"])
    assert wins.loc[("g1", "g2"), "win_rate"] == 1.0 and wins.loc[("g1", "g2"), "n_prompts"] == 4
    assert wins.loc[("g3", "g2"), "win_rate"] == pytest.approx((0.5 + 1 + 0) / 3)  # a tie counts half
    assert wins.loc[("g2", "g3"), "win_rate"] + wins.loc[("g3", "g2"), "win_rate"] == pytest.approx(1.0)
    lower = compare_generators(_scores(), {"quality": False}, n_resamples=100)
    assert lower.ranking("quality") == ["g3", "g2", "g1"]
    assert lower.win_rates.set_index(["generator", "opponent"]).loc[("g1", "g2"), "win_rate"] == 0.0


# ---- a whole bench ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


def _bench_root(tmp_path: Path) -> tuple[Path, Path]:
    images = write_images(tmp_path / "src", 10)
    root = tmp_path / "root"
    for g, gen in enumerate(["alpha", "beta"]):
        (root / gen).mkdir(parents=True)
        for pid in range(4):
            shutil.copy(images[g * 4 + pid], root / gen / f"{pid:05d}.jpg")
    shutil.copy(images[8], root / "beta" / "3_1.jpg")
    suite = tmp_path / "suite.csv"
    pd.DataFrame(
        {"id": ["0", "1", "2", "3"], "prompt": ["a red fox", "a blue car", "a cat", "a dog"], "style": list("aabb")}
    ).to_csv(suite, index=False)
    return root, suite


def test_bench_through_the_cli(model_dir: Path, tmp_path: Path) -> None:
    root, suite = _bench_root(tmp_path)
    out = tmp_path / "out"
    args = [
        "bench",
        root,
        "--prompts",
        suite,
        "--out",
        out,
        "--model",
        model_dir,
        "--workers",
        "0",
        "--bootstrap",
        "200",
    ]
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "quality (higher is better)" in result.output
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False, dtype={"prompt_id": str})
    assert list(scores.columns) == [
        "image",
        "prompt",
        "generator",
        "prompt_id",
        "model",
        "quality",
        "alignment",
        "error",
        "warning",
    ]
    assert len(scores) == 9 and scores.loc[scores["image"] == "beta/3_1.jpg", "prompt"].item() == "a dog"
    doc = json.loads((out / "bench.json").read_text())
    assert doc["model"] == "test-tiny" and doc["n_images"] == 9 and doc["generators"] == ["alpha", "beta"]
    # what arrives in bench.json: each generator's mean over prompts of its per-prompt means in scores.csv
    per_prompt = scores.groupby(["generator", "prompt_id"])["quality"].mean().groupby("generator").mean()
    overall = {r["generator"]: r for r in doc["means"] if r["dimension"] == "quality" and r["group_column"] == "all"}
    for gen, mean in per_prompt.items():
        assert overall[gen]["mean"] == pytest.approx(mean)
    assert doc["ranking"]["quality"] == sorted(per_prompt.index, key=lambda g: -per_prompt[g])
    assert {r["group"] for r in doc["means"] if r["group_column"] == "style"} == {"a", "b"}
    assert "## quality (higher is better)" in (out / "bench.md").read_text()
    with Image.open(out / "bench.png") as chart:
        assert chart.format == "PNG" and chart.size[0] > 400
    again = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert again.exit_code == 2 and "--reuse-scores" in again.output


def test_reused_scores_are_not_scored_again(model_dir: Path, tmp_path: Path) -> None:
    root, suite = _bench_root(tmp_path)
    scorer = load(str(model_dir))
    first = run_bench(scorer, root, suite, tmp_path / "out", workers=0, n_resamples=100)

    def refuse(*args, **kwargs):
        raise AssertionError("scored again")

    scorer.score_to_file = refuse  # type: ignore[method-assign]
    second = run_bench(scorer, root, suite, tmp_path / "out", reuse_scores=True, n_resamples=100)
    pd.testing.assert_frame_equal(first.stats.means, second.stats.means)
    (root / "alpha" / "00000.jpg").unlink()
    with pytest.raises(ValueError, match="scores other images or prompts"):
        run_bench(scorer, root, suite, tmp_path / "out", reuse_scores=True)
