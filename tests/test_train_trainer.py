"""The training loop on a tiny synthetic dataset with a tiny model: it learns, saves, loads and resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import _train_tiny as tiny
from agiqa.models.card import ModelCard
from agiqa.models.registry import create_model
from agiqa.models.state import model_state
from agiqa.models.training_set import load_training_set
from agiqa.train import TrainConfig, train
from agiqa.train import checkpoint as checkpoint_module
from agiqa.train.setup import build_model


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images")


def config(tmp_path: Path, **train: object) -> TrainConfig:
    return tiny.train_config(tmp_path, "tiny-run", 0.34, **{"epochs": 25, "batch_size": 8, "lr": 0.02, **train})


def test_loss_goes_down(tmp_path: Path, data) -> None:
    result = train(config(tmp_path), dataset=data)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert result.cached and result.steps == 25 * 2
    assert last < 0.7 * first, result.history


def test_pair_objective_learns_the_order(tmp_path: Path, data) -> None:
    result = train(config(tmp_path, loss="pairwise_ce", epochs=15, keep_best=False), dataset=data)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_stable_preference_runs_both_steps(tmp_path: Path, data) -> None:
    sp = {"enabled": True, "views": 2, "switch_step": 5}
    result = train(config(tmp_path, loss="kl", epochs=3, stable_preference=sp), dataset=data)
    assert result.steps > 5 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)


def test_checkpoint_loads_through_create_model(tmp_path: Path, data) -> None:
    result = train(config(tmp_path, epochs=3), out_dir=tmp_path / "model", dataset=data)
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert saved and {k for k in saved if k.startswith("encoder.")} == {
        "encoder.image_projection.weight",
        "encoder.text_projection.weight",
    }  # frozen towers not saved
    loaded = create_model(str(tmp_path / "model"))
    assert loaded.card.name == "tiny-run"
    feats = result.model.forward_features(torch.rand(3, 3, 16, 16), ["a red square"] * 3)
    with torch.no_grad():
        want, got = result.model.forward_head(feats), loaded.forward_head(feats)
    for dim in want:
        torch.testing.assert_close(got[dim], want[dim])


def test_resume_matches_uninterrupted_run(tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, epochs=4, checkpoint_every=3, keep_best=False)
    whole = train(cfg, out_dir=tmp_path / "whole", dataset=data)

    real_save = checkpoint_module.Checkpoint.save

    def crash_after_first_save(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", crash_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=tmp_path / "broken", dataset=data)
    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", real_save)
    resumed = train(cfg, out_dir=tmp_path / "broken", resume=True, dataset=data)
    assert resumed.steps == whole.steps
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert [h["loss"] for h in whole.history] == pytest.approx([h["loss"] for h in resumed.history])


def test_same_seed_same_model_other_seed_differs(tmp_path: Path, data) -> None:
    a = train(config(tmp_path, epochs=2), dataset=data).model.state_dict()
    b = train(config(tmp_path, epochs=2), dataset=data).model.state_dict()
    c = train(config(tmp_path, epochs=2, seed=1), dataset=data).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if not k.startswith("encoder."))


def test_projections_train_over_cached_summaries(tmp_path: Path, data) -> None:
    """TSP-MGS with ``project_in_head``: cached features stop at the summaries and the projections learn."""
    section = {**tiny.tiny_model_section(), "method": "tsp-mgs"}
    section["method_args"] = {"n_patches": 1, "project_in_head": True, "logit_scale": 10.0}
    cfg = config(tmp_path, epochs=5).replace(model=section)
    untrained = build_model(cfg)
    result = train(cfg, out_dir=tmp_path / "model", dataset=data)
    assert result.cached
    before = untrained.encoder.image_projection.weight
    after = result.model.encoder.image_projection.weight
    assert not torch.allclose(before, after), "the image projection did not train"
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    torch.testing.assert_close(saved["encoder.image_projection.weight"], after.detach())
    assert not any(k.startswith("encoder.image_tower") for k in saved)


def test_run_folder_card_says_what_it_was_trained_on(tmp_path: Path, data) -> None:
    result = train(config(tmp_path, epochs=3), out_dir=tmp_path / "model", dataset=data)
    card = ModelCard.from_yaml(tmp_path / "model" / "config.yaml")
    record = load_training_set(card)
    assert record is not None and record.dataset == "tiny" and record.split == "all images (no split file)"
    assert len(record.train) + len(record.validation) == len(data.samples) and record.validation
    assert not set(record.train) & set(record.validation) and record.n_prompts == 6
    assert card.trained_on == record.describe() and str(tmp_path) in card.trained_on
    assert f"{len(record.train)} images, {len(record.validation)} more held out for validation;" in card.trained_on
    best = max(result.history, key=lambda h: h["val"])
    assert card.metrics["val_quality_srcc"] == pytest.approx(best["val_srcc_quality"], abs=1e-4)
    assert card.metrics["val_epoch"] == best["epoch"]
    assert "Trained with `agiqa train`" in card.description and "Untrained" not in card.description
    assert model_state(card) == "trained"
