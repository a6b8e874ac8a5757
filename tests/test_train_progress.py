"""Progress of feature encoding: a bar on a terminal, timed log lines with rate and time left everywhere else."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import _train_tiny as tiny
from agiqa.train.features import FeatureBank
from agiqa.train.progress import WorkProgress
from agiqa.train.setup import apply_freeze, build_model
from agiqa.train.table import image_table


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain() -> Console:
    return Console(file=io.StringIO(), force_terminal=False)


def test_log_lines_every_interval_with_rate_and_time_left() -> None:
    clock, log = Clock(), io.StringIO()
    with WorkProgress("encoding images (orig)", console=plain(), stream=log, interval=30, clock=clock) as bar:
        bar.start(1000, "200 found in the feature cache (/c)")
        for _ in range(10):  # 10 steps of 50 images, 10 s each: 5 images/s
            clock.now += 10
            bar.advance(50)
    lines = log.getvalue().splitlines()
    assert lines[0] == "encoding images (orig): 1000 to do, 200 found in the feature cache (/c)"
    assert lines[1:4] == [
        "encoding images (orig): 150/1000 (15%), 5.0/s, about 2 min 50 s left",
        "encoding images (orig): 300/1000 (30%), 5.0/s, about 2 min 20 s left",
        "encoding images (orig): 450/1000 (45%), 5.0/s, about 1 min 50 s left",
    ]
    assert lines[-1] == "encoding images (orig): 500/1000 done in 1 min 40 s (5.0/s)" and len(lines) == 5


def test_a_terminal_gets_a_bar_with_the_time_left() -> None:
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with WorkProgress("encoding images (orig)", console=console, clock=clock) as bar:
        bar.start(40, "0 found in the feature cache (/c)")
        clock.now += 15
        bar.advance(30)
    text = out.getvalue()
    assert "━" in text and "30/40" in text and "2.0/s, about 5 s left" in text


def test_feature_encoding_reports_progress_in_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGIQA_PROGRESS_SECONDS", "0")  # a line after every batch
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=3, per_prompt=3)
    config = tiny.train_config(tmp_path, "progress", 0.0)
    model = build_model(config)
    apply_freeze(model, config)
    FeatureBank(model, image_table(data), True, str(tmp_path / "cache"), progress=True)
    err = capsys.readouterr().err.splitlines()
    cache = tmp_path / "cache"
    assert f"encoding images (orig): 9 to do, 0 found in the feature cache ({cache})" in err
    assert any(line.startswith("encoding images (orig): 9/9 done in") for line in err)
    assert f"encoding prompts: 3 to do, 0 found in the feature cache ({cache})" in err
    FeatureBank(model, image_table(data), True, str(tmp_path / "cache"), progress=True)
    assert capsys.readouterr().err == ""  # all cached: nothing to report
