"""Faults during training leave nothing half-done: damaged cache shards are recomputed, a NaN loss stops the run
naming the step, checkpoints are replaced atomically and checked by hash, ``--resume`` never silently restarts,
and a real ``agiqa train`` killed with SIGKILL resumes to the model of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import _train_tiny as tiny
from _cli_process import cli_process
from agiqa.cli import app
from agiqa.train import TrainingDiverged, train
from agiqa.train import checkpoint as checkpoint_module
from agiqa.train import setup as train_setup
from agiqa.train.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images", n_prompts=3, per_prompt=4)


def config(tmp_path: Path, **train_keys: object):
    keys = {"epochs": 4, "batch_size": 4, "lr": 0.02, "keep_best": False, **train_keys}
    return tiny.train_config(tmp_path, "tiny-faults", 0.0, **keys)


def _shards(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache").glob("img-*/shard-*.safetensors"))


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_a_cache_shard_holding_nan_is_set_aside_and_recomputed(tmp_path: Path, data) -> None:
    clean = train(config(tmp_path), dataset=data)
    shard = _shards(tmp_path)[0]
    tensors = load_file(str(shard))
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, str(shard))
    with pytest.warns(UserWarning, match=rf"{shard}.*holding NaN or inf.*computed again"):
        again = train(config(tmp_path), dataset=data)
    assert again.cache_misses > 0 and shard.with_suffix(".corrupt").is_file()
    assert _same_weights(clean.model.state_dict(), again.model.state_dict()) == 0.0


def test_a_truncated_cache_shard_is_set_aside_and_recomputed(tmp_path: Path, data) -> None:
    clean = train(config(tmp_path), dataset=data)
    shard = _shards(tmp_path)[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.warns(UserWarning, match=rf"{shard} is unreadable"):
        again = train(config(tmp_path), dataset=data)
    assert again.cache_misses > 0
    assert _same_weights(clean.model.state_dict(), again.model.state_dict()) == 0.0


def test_an_encoder_giving_nan_is_an_error_naming_the_image(tmp_path: Path, data, monkeypatch) -> None:
    real = tiny.TinyEncoder.encode_image

    def broken(self, pixel_values):
        out = real(self, pixel_values)
        out.pooled = out.pooled * float("nan")
        return out

    monkeypatch.setattr(tiny.TinyEncoder, "encode_image", broken)
    with pytest.raises(ValueError, match=r"image .*img_0_0\.png: its features hold NaN or inf"):
        train(config(tmp_path), dataset=data)
    assert _shards(tmp_path) == []  # nothing of it was cached


def test_a_nan_loss_stops_the_run_naming_the_step_and_writes_no_model(tmp_path: Path, data, monkeypatch) -> None:
    cfg = config(tmp_path, lr=1e30)  # after warm-up AdamW moves every weight by ~lr: the outputs overflow
    with pytest.raises(TrainingDiverged, match=r"step [2-4] \(epoch [12]\): the loss is (nan|inf)"):
        train(cfg, out_dir=tmp_path / "out", dataset=data)
    assert not (tmp_path / "out" / "model.safetensors").exists()

    monkeypatch.setattr(train_setup, "load_training_data", lambda config: data)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "cli")], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and "the loss is" in result.output, result.output
    assert not (tmp_path / "cli" / "model.safetensors").exists()


def test_checkpoints_come_every_epoch_by_default_and_resume_needs_one(tmp_path: Path, data, monkeypatch) -> None:
    cfg = config(tmp_path)  # checkpoint_every: 0, as in the shipped configs
    with pytest.raises(ValueError, match=r"holds no checkpoint to resume from; run without --resume"):
        train(cfg, out_dir=tmp_path / "out", resume=True, dataset=data)
    whole = train(cfg, out_dir=tmp_path / "whole", dataset=data)

    saves = []
    real_save = checkpoint_module.Checkpoint.save

    def crash_in_epoch_three(self, model, opt, sched, scalars, best):
        real_save(self, model, opt, sched, scalars, best)
        saves.append(scalars["step"])
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", crash_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=tmp_path / "out", dataset=data)
    assert saves == [3, 6]  # 12 images / batch 4: one checkpoint per 3-step epoch
    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", real_save)
    resumed = train(cfg, out_dir=tmp_path / "out", resume=True, dataset=data)
    assert resumed.steps == whole.steps == 12 and resumed.history[0]["step"] == 3
    assert _same_weights(whole.model.state_dict(), resumed.model.state_dict()) == 0.0


def test_a_save_cut_short_leaves_the_previous_checkpoint_whole(tmp_path: Path, data, monkeypatch) -> None:
    cfg = config(tmp_path)
    whole = train(cfg, out_dir=tmp_path / "whole", dataset=data)
    calls = [0]
    real = checkpoint_module.save_file

    def die_in_second_save(tensors, filename, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 4:  # the second checkpoint's second file: the first is on disk, the rest is not
            raise KeyboardInterrupt
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module, "save_file", die_in_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=tmp_path / "out", dataset=data)
    monkeypatch.setattr(checkpoint_module, "save_file", real)
    manifest = json.loads((tmp_path / "out" / "checkpoint" / "latest.json").read_text())
    assert manifest["step"] == 3
    resumed = train(cfg, out_dir=tmp_path / "out", resume=True, dataset=data)
    assert _same_weights(whole.model.state_dict(), resumed.model.state_dict()) == 0.0


def test_damaged_checkpoint_files_are_named(tmp_path: Path, data) -> None:
    cfg = config(tmp_path)
    train(cfg, out_dir=tmp_path / "out", dataset=data)
    folder = tmp_path / "out" / "checkpoint"
    manifest = json.loads((folder / "latest.json").read_text())
    weights = folder / manifest["folder"] / "optimizer.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match=rf"{weights}: damaged \(its SHA-256 differs"):
        train(cfg, out_dir=tmp_path / "out", resume=True, dataset=data)
    (folder / "latest.json").write_text('{"format": 2, "step": 3, "fol')
    with pytest.raises(CheckpointError, match=rf"{folder / 'latest.json'}: damaged"):
        train(cfg, out_dir=tmp_path / "out", resume=True, dataset=data)


def _table(data, root: Path) -> Path:
    rows = [{"image": s.image, "prompt": s.prompt, **s.labels} for s in data.samples]
    pd.DataFrame(rows).to_csv(root / "table.csv", index=False)
    return root / "table.csv"


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_uninterrupted_model(tmp_path: Path, data) -> None:
    """A real ``agiqa train`` process, killed with SIGKILL mid-run, then ``--resume``, against an uninterrupted run
    of the same config; tolerance 1e-6 (observed: identical)."""
    cfg = config(tmp_path, epochs=8).replace(data={"dataset": "generic", "root": str(_table(data, tmp_path))})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    prelude = "import _train_tiny; _train_tiny.register()"
    common = ["train", path, "--threads", "1"]
    env = {**os.environ, "COLUMNS": "200"}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the processes below (--threads 1): the same summation order, the same weights
    try:
        train(cfg, out_dir=tmp_path / "whole", dataset=data)  # the uninterrupted run, in this process
    finally:
        torch.set_num_threads(threads)

    run = cli_process(*common, "--out", tmp_path / "run", env={**env, "AGIQA_TEST_SLOW_STEP": "0.1"}, prelude=prelude)
    manifest = tmp_path / "run" / "checkpoint" / "latest.json"
    deadline = time.monotonic() + 300
    while not manifest.is_file() or json.loads(manifest.read_text())["step"] < 9:
        assert run.poll() is None, "the run ended before it could be killed: " + run.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert not (tmp_path / "run" / "model.safetensors").exists()

    resumed = cli_process(*common, "--out", tmp_path / "run", "--resume", env=env, prelude=prelude)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    a = load_file(str(tmp_path / "whole" / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert _same_weights(a, b) <= 1e-6
    history = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("whole", "run")]
    assert [h["loss"] for h in history[0]] == pytest.approx([h["loss"] for h in history[1]], abs=1e-6)
