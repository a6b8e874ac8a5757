"""``agiqa train`` and ``agiqa protocol``: a tiny config, bad configs, ``--threads``, and the configs and splits that
ship inside the package, used from a folder that is not the checkout (as an installed agiqa is)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

import _train_tiny as tiny
from agiqa.cli import app
from agiqa.configs import shipped_configs
from agiqa.data.sample import Dataset
from agiqa.train import setup as train_setup


@pytest.mark.usefixtures("keep_torch_threads")
def test_train_command_writes_a_model_folder(tmp_path: Path, monkeypatch) -> None:
    tiny.register()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=3, per_prompt=3)
    monkeypatch.setattr(train_setup, "load_training_data", lambda config: data)  # no tiny reader registered
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
    args = ["train", str(config), "--out", str(tmp_path / "out"), "--epochs", "1", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert torch.get_num_threads() == 1, "--threads did not reach torch"
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((tmp_path / "out" / "train_config.yaml").read_text())["train"]["num_threads"] == 1
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["name"] == "tiny-cli"
    assert isinstance(data, Dataset)


def test_train_command_reports_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\nmodel: tsp-mgs-lite\ntrain: {epoch: 3}\n")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert "train.epoch" in result.output and str(config) in result.output


def agiqa3k_copy(root: Path, n_prompts: int = 3, per_prompt: int = 3) -> Path:
    """A tiny dataset in AGIQA-3K's layout (``data.csv`` + ``images/``), read by the real ``agiqa3k`` reader."""
    data = tiny.make_dataset(root / "images", n_prompts=n_prompts, per_prompt=per_prompt)
    rows = [
        {
            "name": Path(s.image).name,
            "prompt": s.prompt,
            "mos_quality": s.labels["quality"],
            "std_quality": 0.1,
            "mos_align": s.labels["alignment"],
            "std_align": 0.1,
        }
        for s in data.samples
    ]
    pd.DataFrame(rows).to_csv(root / "data.csv", index=False)
    return root


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with no checkout in it (no configs/, no benchmarks/) and a private feature cache."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("AGIQA_CACHE_DIR", str(tmp_path / "cache"))
    return cwd


def test_shipped_config_names_resolve_outside_the_checkout(elsewhere: Path) -> None:
    missing = elsewhere / "no-data"
    result = CliRunner().invoke(app, ["train", "lite/tsp-mgs", "--root", str(missing)])
    assert result.exit_code == 1 and "does not exist" in result.output and str(missing) in result.output, result.output
    result = CliRunner().invoke(app, ["train", "lite/tsp-mgz"])
    assert result.exit_code == 2 and "Did you mean 'lite/tsp-mgs'" in result.output
    result = CliRunner().invoke(app, ["protocol", "--method", "nosuch", "--dataset", "agiqa3k", "--root", "x"])
    assert result.exit_code == 2 and "lite/nosuch" in result.output and "--config" in result.output


@pytest.mark.slow
@pytest.mark.usefixtures("keep_torch_threads")
def test_installed_train_and_protocol_run_from_another_folder(elsewhere: Path, tmp_path: Path) -> None:
    root = agiqa3k_copy(tmp_path / "agiqa3k")
    args = ["train", "lite/ip-iqa", "--root", str(root), "--epochs", "1", "--out", "model", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (elsewhere / "model" / "model.safetensors").is_file() and torch.get_num_threads() == 1
    protocol = ["protocol", "--method", "ip-iqa", "--dataset", "agiqa3k", "--root", str(root), "--n-splits", "2"]
    protocol += ["--out", "results", "--no-robustness"]
    result = CliRunner().invoke(app, protocol)  # the shipped AGIQA-3K splits do not fit this tiny copy
    assert result.exit_code == 2 and "--splits FILE" in result.output, result.output
    result = CliRunner().invoke(app, [*protocol, "--splits", "splits.json"])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "results" / "protocol_ip-iqa_agiqa3k.md").is_file() and (elsewhere / "splits.json").is_file()


@pytest.mark.slow
@pytest.mark.usefixtures("keep_torch_threads")
@pytest.mark.parametrize("config", sorted(c for c in shipped_configs() if c.startswith("lite/")))
def test_every_shipped_lite_config_trains(config: str, elsewhere: Path, tmp_path: Path) -> None:
    """One epoch of every shipped lite config on a tiny copy of AGIQA-3K, through ``agiqa train``: a change elsewhere
    must not leave a shipped config that no longer trains (the trainer's closed-form step once refused every TSP-MGS
    with weak views, ``lite/tsp-mgs-sp``). Five prompts: the caption map's text basis needs three in training. The
    CLIP-class configs need hub weights that cannot be had offline."""
    root = agiqa3k_copy(tmp_path / "agiqa3k", n_prompts=5, per_prompt=2)
    args = ["train", config, "--root", str(root), "--epochs", "1", "--out", "model", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (elsewhere / "model" / "model.safetensors").is_file()


def test_protocol_writes_outside_the_committed_results_by_default(
    elsewhere: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agiqa.api

    root = agiqa3k_copy(tmp_path / "agiqa3k")
    seen = {}

    def fake_run(config, data, splits, ratios):  # the protocol itself is tested elsewhere; here: where it writes
        seen["splits"] = len(splits)
        per_split = [{"quality": {"srcc": 0.5}}] * len(splits)
        return agiqa.api.ProtocolResult(config.name, per_split, agiqa.api.aggregate(per_split), [1.0] * len(splits))

    monkeypatch.setattr(agiqa.api, "run_protocol", fake_run)
    args = ["protocol", "--method", "ip-iqa", "--dataset", "agiqa3k", "--root", str(root), "--no-robustness"]
    result = CliRunner().invoke(app, [*args, "--splits", "10"])
    assert result.exit_code == 2 and "--n-splits 10" in result.output, result.output
    assert not (elsewhere / "10").exists()
    result = CliRunner().invoke(app, [*args, "--n-splits", "2", "--splits", "s.json"])
    assert result.exit_code == 0, result.output
    assert seen["splits"] == 2 and (elsewhere / "s.json").is_file()
    assert (elsewhere / "runs" / "protocol" / "ip-iqa-agiqa3k" / "protocol_ip-iqa_agiqa3k.md").is_file()
    assert not (elsewhere / "benchmarks").exists()


def test_bad_config_contents_are_errors_not_tracebacks(elsewhere: Path, tmp_path: Path) -> None:
    root = agiqa3k_copy(tmp_path / "agiqa3k")
    cases = {
        "data: {dataset: agiqa3kk}": "data.dataset: unknown dataset 'agiqa3kk'. Did you mean 'agiqa3k'",
        "model: tsp-mgs-lit": "model: unknown model 'tsp-mgs-lit'. Did you mean 'tsp-mgs-lite'",
        "data: {splits: nosuch.json}": "data.splits: nosuch.json does not exist",
    }
    for change, expected in cases.items():
        config = elsewhere / "c.yaml"
        base = {"name": "x", "model": "ip-iqa-lite", "data": {"root": str(root)}}
        key, value = change.split(": ", 1)
        update = yaml.safe_load(value) if value.startswith("{") else value
        base[key] = {**base[key], **update} if isinstance(update, dict) else update
        config.write_text(yaml.safe_dump(base))
        result = CliRunner().invoke(app, ["train", str(config)])
        assert result.exit_code == 2 and expected in " ".join(result.output.split()), (change, result.output)
        assert "Traceback" not in result.output
    wrong_root = tmp_path / "wrong"
    wrong_root.mkdir()
    (wrong_root / "data.csv").write_text((root / "data.csv").read_text())  # labels without the images
    result = CliRunner().invoke(app, ["train", "lite/ip-iqa", "--root", str(wrong_root)])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "9 of the 9 images of agiqa3k are not where its labels say" in text
    assert f"agiqa datasets validate agiqa3k --root {wrong_root}" in text
