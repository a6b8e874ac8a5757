"""TSP-MGS's ``own_projections``: a dimension with projections of its own trains them alone and leaves the shared
ones (the other dimensions' scores) to the other losses, through the model and through the real trainer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import _train_tiny as tiny
from _tiny import TinyDualEncoder, tiny_images
from agiqa.data.sample import Dataset
from agiqa.models.card import ScoreSpec
from agiqa.models.registry import create_model
from agiqa.models.tsp_mgs import TSPMGS
from agiqa.train import train
from agiqa.train.setup import prepare

DIMS = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]
ARGS = {"n_patches": 1, "project_in_head": True, "prompt_kind": {"alignment": "perception"}}


class _NoProjections(TinyDualEncoder):
    def projection_modules(self) -> list[torch.nn.Module]:
        return []


def _model(**extra: object) -> TSPMGS:
    return TSPMGS(TinyDualEncoder(seed=3), DIMS, alpha=0.5, **ARGS, **extra)


def _features(model: TSPMGS) -> dict[str, torch.Tensor]:
    pixels = torch.stack([model.preprocess(image) for image in tiny_images(4)])
    with torch.no_grad():
        return {**model.image_features(pixels), **model.text_features(["a cat", "a red cube", "two dogs", "a car"])}


@pytest.mark.parametrize("fine_grained", [False, True])
def test_copies_start_as_the_shared_projections_and_each_loss_reaches_only_its_own(fine_grained: bool) -> None:
    """Eq. 6's word terms included: a dimension on its own projections compares the words in its own space too."""
    shared = _model(fine_grained=fine_grained)
    own = _model(fine_grained=fine_grained, own_projections=["alignment"])
    feats = _features(own)
    with torch.no_grad():
        for dim, score in own.forward_head(feats).items():  # untrained: the same scores as the shared model's
            torch.testing.assert_close(score, shared.forward_head(feats)[dim])

    copies = own.own_projections["alignment"]
    shared_projections = own.encoder.projection_modules()
    own.forward_head(feats)["alignment"].sum().backward()
    assert all(p.grad is None or not p.grad.any() for m in shared_projections for p in m.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in copies.parameters())
    own.zero_grad(set_to_none=True)
    own.forward_head(feats)["quality"].sum().backward()
    assert all(p.grad is None for p in copies.parameters())
    assert all(p.grad.abs().sum() > 0 for m in shared_projections for p in m.parameters())


def test_own_projections_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="own_projections.*among"):
        _model(own_projections=["sharpness"])
    with pytest.raises(ValueError, match="project_in_head must be true"):
        TSPMGS(TinyDualEncoder(), DIMS, **{**ARGS, "project_in_head": False}, own_projections=["alignment"])
    with pytest.raises(ValueError, match="image and a text projection"):
        TSPMGS(_NoProjections(), DIMS, **ARGS, own_projections=["alignment"])


def _relabelled(data: Dataset) -> Dataset:
    """The same images and quality labels; the alignment labels reversed."""
    samples = [replace(s, labels={**s.labels, "alignment": 5.0 - s.labels["alignment"]}) for s in data.samples]
    return Dataset(data.name, data.root, samples=samples, dimensions=data.dimensions)


def test_through_the_trainer_quality_never_feels_the_alignment_labels(tmp_path: Path) -> None:
    """What arrives at the shared projections from the trainer's losses: with alignment on projections of its own,
    reversing the alignment labels leaves the trained quality scores exactly as they were; sharing, it does not.
    The saved folder holds the copies and reloads with the same scores."""
    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=12, per_prompt=5)

    def run(dataset: Dataset, root: Path, **extra: object):
        cfg = tiny.tsp_caption_config(root, **extra).replace(train={"keep_best": False})
        model = train(cfg, out_dir=root / "model", dataset=dataset).model
        bank = prepare(cfg, dataset).bank
        feats = bank.batch(torch.arange(len(bank.table.images)))
        with torch.no_grad():
            return model.eval().forward_head(feats), feats

    own = {"own_projections": ["alignment"]}
    first, feats = run(data, tmp_path / "a", **own)
    second, _ = run(_relabelled(data), tmp_path / "b", **own)
    torch.testing.assert_close(second["quality"], first["quality"])
    assert not torch.allclose(second["alignment"], first["alignment"])
    shared_first, _ = run(data, tmp_path / "c")
    shared_second, _ = run(_relabelled(data), tmp_path / "d")
    assert not torch.allclose(shared_second["quality"], shared_first["quality"])  # the test can tell

    saved = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    assert {"own_projections.alignment.image.weight", "own_projections.alignment.text.weight"} <= set(saved)
    loaded = create_model(str(tmp_path / "a" / "model"))
    with torch.no_grad():
        got = loaded.forward_head(feats)
    for dim, score in first.items():
        torch.testing.assert_close(got[dim], score)
