"""``agiqa cache``: where the feature cache is, how big, what it holds per encoder; ``agiqa cache clear``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import _train_tiny as tiny
from agiqa.cli import app
from agiqa.train.features import FeatureBank
from agiqa.train.setup import apply_freeze, build_model
from agiqa.train.table import image_table

runner = CliRunner()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache filled the way training fills it (tiny model: 9 images, 3 prompts), in $AGIQA_CACHE_DIR."""
    root = tmp_path / "cache"
    monkeypatch.setenv("AGIQA_CACHE_DIR", str(root))
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=3, per_prompt=3)
    config = tiny.train_config(tmp_path, "cached", 0.0)
    model = build_model(config)
    apply_freeze(model, config)
    FeatureBank(model, image_table(data), True, None)
    (root / "notes.txt").write_text("not the cache's")  # someone else's file in the same folder
    return root


def _text(result) -> str:
    return " ".join(result.output.split())


def test_cache_shows_where_how_big_and_entries_per_encoder(cache: Path) -> None:
    result = runner.invoke(app, ["cache"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert f"feature cache at {cache}:" in text and "3 namespace(s)" in text
    rows = [line.split("│") for line in result.output.splitlines() if "│" in line]
    cells = {(r[1].strip(), r[2].strip()): r[4].strip() for r in rows}
    assert cells == {("tiny", "image features"): "9", ("tiny", "text features"): "3", ("tiny", "encoder outputs"): "9"}


def test_cache_clear_asks_removes_only_the_cache_and_reports(cache: Path) -> None:
    result = runner.invoke(app, ["cache", "clear"])
    assert result.exit_code == 2 and "pass --yes" in _text(result)  # no terminal to ask on: nothing removed
    assert any(cache.glob("img-*"))
    result = runner.invoke(app, ["cache", "clear", "--yes"])
    assert result.exit_code == 0 and "removed 3 namespace(s)" in _text(result)
    assert [p.name for p in cache.iterdir()] == ["notes.txt"]
    assert "0 namespace(s)" in _text(runner.invoke(app, ["cache"]))
    assert "is empty" in _text(runner.invoke(app, ["cache", "clear", "--dir", str(cache)]))
