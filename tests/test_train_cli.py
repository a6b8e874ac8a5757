"""``agiqa train`` on a tiny config, and its error for a bad config."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

import _train_tiny as tiny
from agiqa.cli import app
from agiqa.data.sample import Dataset
from agiqa.train import trainer


def test_train_command_writes_a_model_folder(tmp_path: Path, monkeypatch) -> None:
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=3, per_prompt=3)
    monkeypatch.setattr(trainer, "load_training_data", lambda config: data)  # no tiny reader registered
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-cli",
                "model": tiny.tiny_model_section(),
                "data": {"dataset": "tiny", "root": str(tmp_path), "val_fraction": 0.0},
                "train": {"epochs": 2, "batch_size": 4, "cache_dir": str(tmp_path / "cache"), "progress": False},
            }
        )
    )
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "out"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["name"] == "tiny-cli"
    assert isinstance(data, Dataset)


def test_train_command_reports_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\nmodel: tsp-mgs-lite\ntrain: {epoch: 3}\n")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert "train.epoch" in result.output and str(config) in result.output
