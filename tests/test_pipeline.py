"""``score_to_file``: formats, chunked atomic output, resuming, and refusing to mix runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agiqa.api import Scorer, load
from agiqa.data.files import find_images, resolve_image
from agiqa.pipeline.engine import iter_scores
from agiqa.pipeline.resumable import partial_dir, score_to_file
from scoring_fixtures import write_images, write_tiny_model


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    return load(str(write_tiny_model(tmp_path_factory.mktemp("tiny"))))


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[str]]:
    folder = tmp_path_factory.mktemp("imgs")
    paths = write_images(folder, 10)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    paths.insert(3, folder / "broken.jpg")
    return paths, [f"a photo of thing {k % 4}" for k in range(len(paths))]


class Interrupt(Exception):
    pass


def _stop_after(n_items: int):
    seen = [0]

    def on_progress(n: int) -> None:
        seen[0] += n
        if seen[0] >= n_items:
            raise Interrupt

    return on_progress


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".parquet"])
def test_formats_hold_the_same_table_as_the_api(scorer: Scorer, items, tmp_path: Path, ext: str) -> None:
    paths, prompts = items
    out = tmp_path / f"s{ext}"
    summary = score_to_file(scorer.model, paths, prompts, out, batch_size=3, chunk_size=4)
    assert (summary.total, summary.failed, summary.resumed) == (11, 1, 0)
    frame = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[ext](
        out
    )
    assert list(frame.columns) == ["image", "prompt", "quality", "alignment", "error", "warning"]
    assert frame["image"].tolist() == [str(p) for p in paths]
    expected = scorer.score(paths, prompts)
    np.testing.assert_allclose(frame["quality"].to_numpy(float), expected.scores["quality"], rtol=1e-6)
    assert "image:" in str(frame["error"][3]) and not partial_dir(out).exists()


def test_interrupted_run_resumes_to_the_same_bytes(scorer: Scorer, items, tmp_path: Path) -> None:
    paths, prompts = items
    reference = tmp_path / "ref.csv"
    score_to_file(scorer.model, paths, prompts, reference, batch_size=3, chunk_size=4)

    out = tmp_path / "s.csv"
    with pytest.raises(Interrupt):
        score_to_file(scorer.model, paths, prompts, out, batch_size=3, chunk_size=4, on_progress=_stop_after(8))
    assert not out.exists()  # nothing a reader could take for the result
    chunks = sorted(p.name for p in partial_dir(out).glob("chunk-*.jsonl"))
    assert chunks == ["chunk-000000.jsonl", "chunk-000001.jsonl"]

    summary = score_to_file(scorer.model, paths, prompts, out, batch_size=5, chunk_size=4)
    assert summary.resumed == 8 and summary.total == 11
    assert out.read_bytes() == reference.read_bytes()
    assert not partial_dir(out).exists()


def test_half_written_chunks_are_not_taken_as_done(scorer: Scorer, items, tmp_path: Path) -> None:
    paths, prompts = items
    reference = tmp_path / "ref.jsonl"
    score_to_file(scorer.model, paths, prompts, reference, batch_size=3, chunk_size=4)
    out = tmp_path / "s.jsonl"
    with pytest.raises(Interrupt):
        score_to_file(scorer.model, paths, prompts, out, batch_size=3, chunk_size=4, on_progress=_stop_after(8))
    folder = partial_dir(out)
    first = folder / "chunk-000000.jsonl"
    lines = first.read_text().splitlines(keepends=True)
    first.write_text("".join(lines[:2]) + lines[2][:10])  # cut mid-line, as a crash on a non-atomic FS would
    second = folder / "chunk-000001.jsonl"
    second.write_text("".join(second.read_text().splitlines(keepends=True)[:3]))  # whole lines, one missing
    (folder / ".chunk-000002.jsonl.tmp-999").write_text('{"i": 8}\n')  # a temp file of a killed writer

    summary = score_to_file(scorer.model, paths, prompts, out, batch_size=3, chunk_size=4)
    assert summary.resumed == 0
    assert out.read_bytes() == reference.read_bytes()


def test_a_different_run_is_not_mixed_in(scorer: Scorer, items, tmp_path: Path) -> None:
    paths, prompts = items
    out = tmp_path / "s.csv"
    with pytest.raises(Interrupt):
        score_to_file(scorer.model, paths, prompts, out, chunk_size=4, on_progress=_stop_after(4))
    manifest = json.loads((partial_dir(out) / "manifest.json").read_text())
    assert manifest["n_items"] == 11 and manifest["chunk_size"] == 4
    with pytest.raises(ValueError, match="items_sha256"):
        score_to_file(scorer.model, paths, [p + "!" for p in prompts], out, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size"):
        score_to_file(scorer.model, paths, prompts, out, chunk_size=5)
    summary = score_to_file(scorer.model, paths, [p + "!" for p in prompts], out, chunk_size=4, restart=True)
    assert summary.resumed == 0 and pd.read_csv(out)["prompt"][0].endswith("!")


def test_existing_output_is_not_overwritten_by_default(scorer: Scorer, items, tmp_path: Path) -> None:
    paths, prompts = items
    out = tmp_path / "s.csv"
    out.write_text("precious\n")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        score_to_file(scorer.model, paths, prompts, out)
    assert out.read_text() == "precious\n"
    score_to_file(scorer.model, paths, prompts, out, overwrite=True)
    assert len(pd.read_csv(out)) == len(paths)
    with pytest.raises(ValueError, match="unsupported extension"):
        score_to_file(scorer.model, paths, prompts, tmp_path / "s.xlsx")


def test_finding_and_resolving_images(tmp_path: Path) -> None:
    write_images(tmp_path / "a" / "deep", 2)
    (tmp_path / "a" / "notes.txt").write_text("x")
    found = find_images([tmp_path / "a"])
    assert [p.name for p in found] == ["img_000.jpg", "img_001.jpg"]
    roots = [tmp_path / "a", tmp_path / "a" / "deep"]
    assert resolve_image("img_001.jpg", roots) == tmp_path / "a" / "deep" / "img_001.jpg"
    assert resolve_image("missing.jpg", roots) == tmp_path / "a" / "deep" / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_images([tmp_path / "nowhere"])


class _PidRecordingPreprocess:
    """Wraps a preprocess and leaves a file named after the process that ran it (picklable, for workers)."""

    def __init__(self, inner, folder: Path) -> None:
        self.inner, self.folder = inner, folder

    def __call__(self, image):
        (self.folder / f"pid-{os.getpid()}").touch()
        return self.inner(image)


def test_decoding_runs_in_worker_processes(scorer: Scorer, items, tmp_path: Path, monkeypatch) -> None:
    paths, prompts = items
    monkeypatch.setattr(scorer.model, "preprocess", _PidRecordingPreprocess(scorer.model.preprocess, tmp_path))
    rows = [r for batch in iter_scores(scorer.model, paths, prompts, batch_size=2, workers=2) for r in batch]
    pids = {int(p.name.split("-")[1]) for p in tmp_path.glob("pid-*")}
    assert len(rows) == len(paths) and pids and os.getpid() not in pids
