"""The folder pipeline at scale: a listing without a stat per file, first rows on disk after a few items, a final
file streamed chunk by chunk, and one writer per ``--out`` (a lock that a killed run does not leave blocking)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _cli_process import cli_process
from agiqa.api import Scorer, load
from agiqa.cli import app
from agiqa.data.files import IMAGE_EXTENSIONS, find_images
from agiqa.pipeline import resumable
from agiqa.pipeline.lock import OutputLocked, lock_path, output_lock
from agiqa.pipeline.resumable import FIRST_CHUNK, chunk_spans, partial_dir, score_to_file
from scoring_fixtures import write_images, write_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return load(str(model_dir))


def test_listing_needs_no_stat_per_file_and_keeps_the_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in ["b", "a/deep", "c"]:
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        for k in range(70):
            (tmp_path / sub / f"img_{k:03d}.{'PNG' if k % 7 == 0 else 'jpg'}").write_bytes(b"x")
        (tmp_path / sub / "notes.txt").write_text("not an image")
    (tmp_path / "link.png").symlink_to(tmp_path / "b" / "img_001.jpg")
    expected = sorted(p for p in tmp_path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())

    calls = [0]
    real_stat = Path.stat

    def counting_stat(self: Path, *args: object, **kwargs: object) -> os.stat_result:
        calls[0] += 1
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", counting_stat)
    found = find_images([tmp_path])
    assert found == expected and len(found) == 211
    assert calls[0] <= 5, f"{calls[0]} stat calls for {len(found)} files"


def test_chunks_start_small_so_rows_reach_the_disk_early() -> None:
    spans = chunk_spans(20_000, 512)
    assert [len(s) for s in spans[:7]] == [16, 32, 64, 128, 256, 512, 512]
    assert spans[0].start == 0 and spans[-1].stop == 20_000
    assert all(a.stop == b.start for a, b in zip(spans, spans[1:], strict=False))
    assert [len(s) for s in chunk_spans(10, 4)] == [4, 4, 2]


class Stop(Exception):
    pass


def test_first_rows_are_on_disk_after_the_first_small_chunk(scorer: Scorer, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", 40)
    out = tmp_path / "s.csv"
    seen = [0]

    def stop_after_first_chunk(n: int) -> None:
        seen[0] += n
        if seen[0] >= FIRST_CHUNK:
            raise Stop

    with pytest.raises(Stop):
        score_to_file(scorer.model, paths, ["a cat"] * 40, out, batch_size=4, on_progress=stop_after_first_chunk)
    first = partial_dir(out) / "chunk-000000.jsonl"
    assert first.is_file() and len(first.read_text().splitlines()) == FIRST_CHUNK
    assert not lock_path(out).exists()  # released (and removed) when the run stopped


def test_final_file_is_assembled_one_chunk_at_a_time(
    scorer: Scorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_images(tmp_path / "imgs", 50)
    sizes: list[int] = []
    real = resumable.rows_to_frame

    def spy(rows, *args, **kwargs):
        sizes.append(len(rows))
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(resumable, "rows_to_frame", spy)
    out = tmp_path / "s.parquet"
    summary = score_to_file(scorer.model, paths, ["a cat"] * 50, out, batch_size=8, chunk_size=20)
    assert summary.total == 50 and sizes == [16, 20, 14]  # never the whole table at once

    import pandas as pd

    frame = pd.read_parquet(out)
    expected = scorer.score(paths, "a cat")
    assert frame["image"].tolist() == [str(p) for p in paths]
    assert frame["quality"].tolist() == pytest.approx(expected.scores["quality"].tolist(), rel=1e-6)


def _hold_lock(out: Path) -> subprocess.Popen:
    script = (
        "import sys, time; from agiqa.pipeline.lock import output_lock\n"
        "with output_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_first_and_a_killed_one_does_not_block(
    scorer: Scorer, tmp_path: Path
) -> None:
    paths = write_images(tmp_path / "imgs", 5)
    out = tmp_path / "s.csv"
    holder = _hold_lock(out)
    try:
        with pytest.raises(OutputLocked, match=rf"being written by another run \(pid {holder.pid} on "):
            score_to_file(scorer.model, paths, ["a cat"] * 5, out)
        assert not out.exists() and not partial_dir(out).exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert lock_path(out).exists()  # the killed holder left its file behind, but not its lock
    summary = score_to_file(scorer.model, paths, ["a cat"] * 5, out)
    assert summary.total == 5 and out.is_file() and not lock_path(out).exists()
    with output_lock(out):
        with pytest.raises(OutputLocked):  # flock is per open file: even this process cannot take it twice
            with output_lock(out):
                pass


@pytest.mark.slow
def test_two_cli_runs_on_one_out(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_images(folder, 40)
    common = ["score", folder, "--prompt", "a small picture", "--model", model_dir, "--workers", "0"]
    out = tmp_path / "s.csv"
    env = {**os.environ, "AGIQA_TEST_SLOW_PREPROCESS": "0.05", "COLUMNS": "250"}
    first = cli_process(*common, "--out", out, env=env)
    deadline = time.monotonic() + 90
    while not (partial_dir(out) / "chunk-000000.jsonl").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first run wrote no chunk in time"
        time.sleep(0.02)
    second = CliRunner().invoke(app, [str(a) for a in [*common, "--out", out]], env={"COLUMNS": "250"})
    assert second.exit_code == 2, second.output
    assert f"being written by another run (pid {first.pid} on" in " ".join(second.output.split())
    assert first.wait(timeout=120) == 0, first.stdout.read()
    assert len(out.read_text().splitlines()) == 41 and not partial_dir(out).exists()
