"""``agiqa score`` / ``rank`` / ``models`` through the real CLI (tiny model folder), and a run killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from _cli_process import cli_process
from agiqa.api import default_rank_dimension
from agiqa.cli import app
from agiqa.models.card import ModelCard
from agiqa.models.registry import CARDS, list_models
from scoring_fixtures import write_images, write_tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    write_images(tmp_path / "imgs", 6)
    return tmp_path / "imgs"


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_score_folder_with_one_prompt(model_dir: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    code, output = _run("score", images, "--prompt", "a cat", "--model", model_dir, "--out", out, "--workers", "0")
    assert code == 0, output
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == ["image", "prompt", "model", "quality", "alignment", "error", "warning"]
    assert len(frame) == 6 and (frame["prompt"] == "a cat").all() and (frame["error"] == "").all()
    assert (frame["model"] == str(model_dir.resolve())).all()  # what `agiqa evaluate` reads to find the model
    assert "6 ok, 0 failed" in output


def test_failed_items_set_the_exit_code(model_dir: Path, images: Path, tmp_path: Path) -> None:
    (images / "zero.png").write_bytes(b"")
    out = tmp_path / "s.jsonl"
    code, output = _run("score", images, "--prompt", "a cat", "--model", model_dir, "--out", out, "--workers", "1")
    assert code == 1, output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    bad = [r for r in rows if r["image"].endswith("zero.png")]
    assert len(rows) == 7 and "0 bytes" in bad[0]["error"] and bad[0]["quality"] is None
    assert "6 ok, 1 failed" in output


def test_input_table_paths_resolve_against_folders_and_the_table(model_dir: Path, images: Path, tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    tables.mkdir()
    write_images(tables / "local", 1)
    table = tables / "t.csv"
    pd.DataFrame(
        {
            "image": ["img_000.jpg", "img_005.jpg", "local/img_000.jpg", "missing.jpg"],
            "prompt": ["a dog", "", "a cat", "x"],
        }
    ).to_csv(table, index=False)
    out = tmp_path / "s.parquet"
    code, output = _run("score", images, "--input", table, "--model", model_dir, "--out", out)
    assert code == 1, output
    frame = pd.read_parquet(out)
    assert frame["image"].tolist() == ["img_000.jpg", "img_005.jpg", "local/img_000.jpg", "missing.jpg"]
    assert frame["error"][0] == "" and frame["error"][2] == ""
    assert frame["error"][1] == "" and frame["warning"][1] == "alignment not scored: no prompt"
    assert frame["quality"].notna()[1] and frame["alignment"].isna()[1]
    assert "not found" in frame["error"][3]


def test_extra_input_columns_are_copied_and_clashes_refused(model_dir: Path, images: Path, tmp_path: Path) -> None:
    table = tmp_path / "t.jsonl"
    pd.DataFrame(
        {"id": ["a1", "b2"], "image": ["img_001.jpg", "img_002.jpg"], "prompt": ["a dog", "a cat"], "seed": [7, 8]}
    ).to_json(table, orient="records", lines=True)
    out = tmp_path / "s.csv"
    code, output = _run("score", images, "--input", table, "--model", model_dir, "--out", out)
    assert code == 0, output
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(frame.columns[:4]) == ["image", "prompt", "id", "seed"]
    assert frame["id"].tolist() == ["a1", "b2"] and frame["seed"].tolist() == ["7", "8"]
    assert frame["quality"].astype(float).notna().all()
    pd.DataFrame({"image": ["img_001.jpg"], "prompt": ["a dog"], "error": ["old"]}).to_csv(table.with_suffix(".csv"))
    code, output = _run(
        "score", images, "--input", table.with_suffix(".csv"), "--model", model_dir, "--out", out, "--overwrite"
    )
    assert code == 2 and "'error'" in output and "rename" in output


def test_bad_arguments_exit_2_with_a_reason(model_dir: Path, images: Path, tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("path,prompt\na.jpg,x\n")
    code, output = _run("score", "--input", table, "--model", model_dir, "--out", tmp_path / "s.csv")
    assert code == 2 and "missing column" in output and "image" in output
    code, output = _run("score", images, "--model", model_dir, "--out", tmp_path / "s.txt")
    assert code == 2 and "unsupported extension" in output
    code, output = _run("score", images, "--model", "no-such-model", "--out", tmp_path / "s.csv")
    assert code == 2 and "unknown model" in output
    (tmp_path / "done.csv").write_text("x\n")
    code, output = _run("score", images, "--model", model_dir, "--out", tmp_path / "done.csv")
    assert code == 2 and "--overwrite" in output


def test_ctrl_c_keeps_the_chunks_and_says_how_to_resume(
    model_dir: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agiqa.pipeline import resumable

    real = resumable.score_to_file

    def interrupted(*args, on_progress=None, **kwargs):
        def press_ctrl_c(n: int) -> None:
            raise KeyboardInterrupt

        return real(*args, on_progress=press_ctrl_c, **kwargs)

    monkeypatch.setattr(resumable, "score_to_file", interrupted)
    out = tmp_path / "s.csv"
    args = ("score", images, "--prompt", "x", "--model", model_dir, "--out", out, "--chunk-size", "2", "-b", "2")
    code, output = _run(*args, "--workers", "0")
    assert code == 130 and "rerun the same command to resume" in output
    assert not out.exists() and (tmp_path / "s.csv.partial" / "chunk-000000.jsonl").is_file()
    monkeypatch.setattr(resumable, "score_to_file", real)
    code, output = _run(*args)
    assert code == 0 and "resuming: 2 of 6" in output


def test_rank_sorts_best_first(model_dir: Path, images: Path) -> None:
    code, output = _run("rank", "--prompt", "a cat", "--model", model_dir, "--json", images)
    assert code == 0, output
    records = json.loads(output)
    quality = [r["quality"] for r in records]
    assert len(records) == 6 and quality == sorted(quality, reverse=True)
    code, output = _run(
        "rank", "--prompt", "a cat", "--model", model_dir, "--json", "--by", "alignment", "--top", "2", images
    )
    align = [r["alignment"] for r in json.loads(output)]
    assert len(align) == 2 and align == sorted(align, reverse=True)
    code, output = _run("rank", "--prompt", "a cat", "--model", model_dir, images)
    assert code == 0 and "ranked by quality" in output
    assert default_rank_dimension(["alignment", "preference"]) == "preference"
    assert default_rank_dimension(["authenticity"]) == "authenticity"


def test_models_lists_weights_and_whether_they_are_here(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    list_models()  # load the package cards first
    base = ModelCard.from_yaml(model_dir / "config.yaml")
    cards = {
        "t-present": ModelCard.from_dict({**base.to_dict(), "name": "t-present"}, source=base.source),
        "t-hub": ModelCard.from_dict({**base.to_dict(), "name": "t-hub", "encoder": "clip:nobody/not-downloaded"}),
        "t-untrained": ModelCard.from_dict({**base.to_dict(), "name": "t-untrained", "weights": None}),
    }
    for name, card in cards.items():
        monkeypatch.setitem(CARDS._items, name, card)
    code, output = _run("models", "--json")
    assert code == 0, output
    rows = {r["name"]: r for r in json.loads(output)}
    assert rows["t-present"]["head_weights_present"] is True and rows["t-present"]["ready"] is True
    assert rows["t-present"]["metrics"] == {"quality_srcc": 0.0}
    assert rows["t-hub"]["encoder_weights_present"] is False and rows["t-hub"]["ready"] is False
    assert rows["t-untrained"]["head_weights"] is None
    assert [d["name"] for d in rows["t-present"]["dimensions"]] == ["quality", "alignment"]
    code, output = _run("models")
    assert code == 0 and "t-untrained" in output and "untrained" in output and "missing" in output


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_same_file(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_images(folder, 40)
    env = {**os.environ, "AGIQA_TEST_SLOW_PREPROCESS": "0.05", "COLUMNS": "120"}
    common = ["score", folder, "--prompt", "a small picture", "--model", model_dir, "--batch-size", "2"]
    common += ["--chunk-size", "4", "--workers", "1"]

    reference = tmp_path / "ref.csv"
    code, output = _run(*common, "--out", reference)
    assert code == 0, output

    out = tmp_path / "s.csv"
    chunks = tmp_path / "s.csv.partial"
    proc = cli_process(*common, "--out", out, env=env)  # a separate process, so that it can be killed
    deadline = time.monotonic() + 90
    while len(list(chunks.glob("chunk-*.jsonl"))) < 3:
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stdout.read()
        assert time.monotonic() < deadline, "no chunk was written in time"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    n_done = len(list(chunks.glob("chunk-*.jsonl")))
    assert 3 <= n_done < 10

    code, output = _run(*common, "--out", out)
    assert code == 0, output
    assert f"resuming: {4 * n_done} of 40" in output
    assert out.read_bytes() == reference.read_bytes()
    assert not chunks.exists()


@pytest.mark.usefixtures("keep_torch_threads")
def test_threads_and_runtime_options(model_dir: Path, images: Path, tmp_path: Path) -> None:
    import torch

    args = ["score", images, "--prompt", "a cat", "--model", model_dir, "--workers", "0"]
    code, output = _run(*args, "--out", tmp_path / "a.csv", "--threads", "1", "--runtime", "eager")
    assert code == 0, output
    assert torch.get_num_threads() == 1  # what the model ran with
    code, output = _run(*args, "--out", tmp_path / "b.csv", "--runtime", "tensorrt")
    assert code == 2 and "--runtime 'tensorrt'" in output and "auto, eager, onnx" in output, output
    code, output = _run(*args, "--out", tmp_path / "c.csv", "--runtime", "onnx")  # the tiny model has no tower
    assert code == 2 and "no exportable image tower" in output, output
    code, output = _run(*args, "--out", tmp_path / "d.csv", "--threads", "0")
    assert code == 2, output


def test_argument_problems_are_found_before_the_model_loads(
    model_dir: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agiqa.api

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(agiqa.api, "load", no_loading)
    (tmp_path / "done.csv").write_text("x\n")
    table = tmp_path / "t.csv"
    table.write_text("image,prompt\nimg_000.jpg,x\n")
    prompted = write_tiny_model(tmp_path / "prompted")  # a model whose every dimension needs the prompt
    card = yaml.safe_load((prompted / "config.yaml").read_text())
    card["dimensions"] = [{**d, "needs_prompt": True} for d in card["dimensions"]]
    (prompted / "config.yaml").write_text(yaml.safe_dump(card))
    cases = {
        "exists; pass --overwrite": ["score", images, "--out", tmp_path / "done.csv"],
        "no_folder/s.csv: folder": ["score", images, "--out", tmp_path / "no_folder" / "s.csv"],
        "missing.png: no such file": ["score", tmp_path / "missing.png", "--prompt", "x", "--out", tmp_path / "a.csv"],
        "unknown model": ["score", images, "--model", "no-such-model", "--out", tmp_path / "a.csv"],
        "no such model folder": ["score", images, "--model", "runs/absent", "--out", tmp_path / "a.csv"],
        "not both": ["score", images, "--input", table, "--prompt", "x", "--out", tmp_path / "a.csv"],
        "test-tiny scores quality, alignment against the prompt; give --prompt": [
            "score",
            images,
            "--model",
            prompted,
            "--out",
            tmp_path / "a.csv",
        ],
    }
    for expected, args in cases.items():
        args = [*args, "--model", model_dir] if "--model" not in args and "--input" in args else args
        code, output = _run(*args)
        assert code == 2 and expected in " ".join(output.split()), (expected, output)
    code, output = _run("explain", images / "img_000.jpg", "--model", prompted)
    assert code == 2 and "against the prompt; give --prompt TEXT" in " ".join(output.split()), output
    code, output = _run("explain", images / "nothing.jpg", "--model", model_dir, "--prompt", "x")
    assert code == 2 and "nothing.jpg: no such file" in output, output


def test_without_a_prompt_the_prompt_free_dimensions_are_scored(model_dir: Path, images: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    code, output = _run("score", images, "--model", model_dir, "--out", out)
    assert code == 0, output
    assert "no --prompt: alignment will not be scored" in output and "6 with warnings" in output
    frame = pd.read_csv(out, keep_default_na=False)
    assert (frame["warning"] == "alignment not scored: no prompt").all() and (frame["error"] == "").all()
    assert (frame["alignment"] == "").all() and pd.to_numeric(frame["quality"]).notna().all()


def test_a_folder_scan_reports_the_files_it_skips(model_dir: Path, images: Path, tmp_path: Path) -> None:
    (images / "logo.svg").write_text("<svg/>")
    (images / "sub").mkdir()
    (images / "sub" / "b.SVG").write_text("<svg/>")
    (images / "sub" / "photo.heic").write_bytes(b"\0" * 10)
    code, output = _run("score", images, "--prompt", "x", "--model", model_dir, "--out", tmp_path / "s.csv")
    assert code == 0, output
    assert "skipped 3 files: 2 .svg, 1 .heic" in output and "6 ok, 0 failed" in output
