"""The ensemble method: the mean of its members over one encoder run, each member on its own projections and its
own loss, through the model, the real trainer and a saved folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import _train_tiny as tiny
from _tiny import TinyDualEncoder, tiny_images
from agiqa.models.card import ModelCard, ScoreSpec
from agiqa.models.ensemble import Ensemble
from agiqa.models.registry import create_model
from agiqa.models.tsp_mgs import TSPMGS
from agiqa.train import TrainConfig, train
from agiqa.train.config import MismatchConfig
from agiqa.train.objectives import make_objective
from agiqa.train.setup import prepare

DIMS = [ScoreSpec("quality", 0, 5), ScoreSpec("alignment", 0, 5, needs_prompt=True)]
PLAIN = {"n_patches": 1, "project_in_head": True, "concept_match": True, "fine_grained": {"quality": False}}
CAPTION = {
    "n_patches": 1,
    "project_in_head": True,
    "concept_match": True,
    "concept_pmi": True,
    "caption_match": True,
    "match_init": 0.05,
    "prompt_kind": {"alignment": "perception"},
    "fine_grained": {"quality": False, "alignment": False},
}
MEMBERS = [{"method": "tsp-mgs", "method_args": PLAIN}, {"method": "tsp-mgs", "method_args": CAPTION}]
PROMPTS = ["a red cube", "two dogs", "a cat on a mat", "a car"]


class _Counting(TinyDualEncoder):
    def __init__(self) -> None:
        super().__init__(seed=5)
        self.image_rows = 0
        self.texts = 0

    def encode_image(self, pixel_values: torch.Tensor):  # noqa: ANN201
        self.image_rows += len(pixel_values)
        return super().encode_image(pixel_values)

    def encode_text(self, texts):  # noqa: ANN001, ANN201
        self.texts += len(texts)
        return super().encode_text(texts)


def _features(model: Ensemble, images: int = 4) -> dict[str, torch.Tensor]:
    pixels = torch.stack([model.preprocess(image) for image in tiny_images(images)])
    with torch.no_grad():
        return {**model.image_features(pixels), **model.text_features(PROMPTS[:images])}


def test_scores_are_the_members_mean_and_the_encoder_runs_once() -> None:
    encoder = _Counting()
    model = Ensemble(encoder, DIMS, MEMBERS).eval()
    feats = _features(model)
    assert encoder.image_rows == 4 * 2  # 4 images x (resized + 1 patch): one pass of the tower for two members
    alone = _Counting()
    TSPMGS(alone, DIMS, **CAPTION).text_features(PROMPTS)
    assert encoder.texts == alone.texts  # and of the text tower
    assert not {"encode_image", "encode_text"} & set(encoder.__dict__)  # the patches are gone after the calls
    with torch.no_grad():
        out = model.forward_head(feats)
        for dim in ("quality", "alignment"):
            members = [m.forward_head(feats)[dim] for m in model.members]
            torch.testing.assert_close(out[dim], (members[0] + members[1]) / 2)
        assert not torch.allclose(*(m.forward_head(feats)["alignment"] for m in model.members))  # two recipes


def test_a_member_gives_only_the_dimensions_it_names() -> None:
    quality_only = [{**MEMBERS[0], "dimensions": ["quality"]}, MEMBERS[1]]
    model = Ensemble(TinyDualEncoder(seed=4), DIMS, quality_only).eval()
    feats = _features(model)
    with torch.no_grad():
        first, second = (m.forward_head(feats) for m in model.members)
        out = model.forward_head(feats)
    torch.testing.assert_close(out["alignment"], second["alignment"])
    torch.testing.assert_close(out["quality"], (first["quality"] + second["quality"]) / 2)
    with pytest.raises(ValueError, match="must be among"):
        Ensemble(TinyDualEncoder(), DIMS, [{**MEMBERS[0], "dimensions": ["sharpness"]}, MEMBERS[1]])
    with pytest.raises(ValueError, match=r"no member gives \['alignment'\]"):
        Ensemble(TinyDualEncoder(), DIMS, [{**m, "dimensions": ["quality"]} for m in MEMBERS])


def test_each_member_projects_with_its_own_copy() -> None:
    encoder = TinyDualEncoder(seed=2)
    model = Ensemble(encoder, DIMS, MEMBERS)
    feats = _features(model)
    first, second = (m.encoder.projection_modules() for m in model.members)
    assert first[0] is not second[0] and first[0] is not encoder.image_projection
    torch.testing.assert_close(first[0].weight, encoder.image_projection.weight)  # copies, as initialised
    model.members[0].forward_head(feats)["alignment"].sum().backward()
    assert first[0].weight.grad is not None and first[0].weight.grad.abs().sum() > 0
    assert second[0].weight.grad is None and encoder.image_projection.weight.grad is None
    assert not encoder.image_projection.weight.requires_grad
    keys = set(model.state_dict())
    assert {"members.0.encoder.copies.0.weight", "members.1.encoder.copies.1.weight"} <= keys
    assert not any(k.startswith("members.0.encoder.patchify") for k in keys)  # towers saved once, by the owner


def test_scores_do_not_depend_on_batch_size_or_order() -> None:
    model = Ensemble(TinyDualEncoder(seed=1), DIMS, MEMBERS).eval()
    images = tiny_images(4)
    with torch.no_grad():
        batch = model(torch.stack([model.preprocess(i) for i in images]), PROMPTS)
        for k in reversed(range(4)):
            one = model(model.preprocess(images[k]).unsqueeze(0), [PROMPTS[k]])
            for dim in batch:
                torch.testing.assert_close(one[dim][0], batch[dim][k], atol=1e-5, rtol=1e-5)


def test_refuses_members_it_cannot_combine() -> None:
    with pytest.raises(ValueError, match="needs two"):
        Ensemble(TinyDualEncoder(), DIMS, MEMBERS[:1])
    with pytest.raises(ValueError, match="member 1 is"):
        Ensemble(TinyDualEncoder(), DIMS, [MEMBERS[0], {"method_args": PLAIN}])
    with pytest.raises(ValueError, match="prepares images differently"):
        Ensemble(TinyDualEncoder(), DIMS, [MEMBERS[0], {"method": "tsp-mgs", "method_args": {**PLAIN, "n_patches": 5}}])
    clash = {"method": "tsp-mgs", "method_args": {**PLAIN, "max_words": 2}}  # other words under the same name
    model = Ensemble(TinyDualEncoder(), DIMS, [MEMBERS[0], clash])
    with pytest.raises(ValueError, match="text feature 'words'"):
        model.text_features(["a cat on a mat"])


def test_fits_in_closed_form_when_a_member_does() -> None:
    """The trainer's prefit step (and its refusals: live encoding, weak views) is for ensembles with a member that
    fits a part in closed form, as it is for that member alone."""
    assert not Ensemble(TinyDualEncoder(), DIMS, [MEMBERS[0], MEMBERS[0]]).fits_in_closed_form
    mixed = Ensemble(TinyDualEncoder(), DIMS, MEMBERS)
    assert [m.fits_in_closed_form for m in mixed.members] == [False, True] and mixed.fits_in_closed_form


def _config(root: Path) -> TrainConfig:
    base = tiny.tsp_caption_config(root)
    model = {k: v for k, v in base.model.items() if k != "method_args"}
    model.update(method="ensemble", method_args={"members": MEMBERS})
    return dataclasses.replace(base, name="tiny-ensemble", model=model)


def test_the_trainer_gives_each_member_its_own_loss(tmp_path: Path) -> None:
    """What arrives at each member from the objective: the loss of the ensemble is the sum of the losses the
    members would have alone (mismatch term included), and each member's gradient is the one of its own loss."""
    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=8, per_prompt=4)
    cfg = _config(tmp_path)
    setup = prepare(cfg, data)
    rows = list(range(len(setup.table.images)))
    objective = make_objective(cfg, setup.model, data, setup.table, rows, [], setup.bank)
    idx = torch.arange(8)
    with setup.bank.prefitted(rows):
        whole = objective.batch_loss(setup.model, setup.bank, idx, 0, "cpu")
        alone = [objective.batch_loss(m, setup.bank, idx, 0, "cpu") for m in setup.model.members]
        torch.testing.assert_close(whole, alone[0] + alone[1])
        mean = objective.batch_loss(_MeanOnly(setup.model), setup.bank, idx, 0, "cpu")
        assert not torch.allclose(whole, 2 * mean)  # training the mean would be another objective
        whole.backward()
        got = setup.model.members[0].encoder.copies[0].weight.grad.clone()
        setup.model.zero_grad(set_to_none=True)
        alone[0].backward()
        torch.testing.assert_close(got, setup.model.members[0].encoder.copies[0].weight.grad)


def _alone(root: Path, member: dict, margin: float) -> TrainConfig:
    """The training config of ``_config`` for one member on its own, with mismatch margin ``margin``."""
    base = tiny.tsp_caption_config(root)
    model = {**{k: v for k, v in base.model.items() if k != "method_args"}, **member}
    return dataclasses.replace(base, model=model).replace(train={"mismatch": {"margin": margin}})


def test_each_trained_member_ends_as_it_would_alone(tmp_path: Path) -> None:
    """The whole path through the trainer: each member's own loss (with its own mismatch margin), prefit and best
    epoch (chosen on its own validation scores, and the two members' best epochs differ here) leave it with the
    very scores of the same recipe trained on its own."""
    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=10, per_prompt=4)
    margins = [0.2, 1.0]
    config = _config(tmp_path / "e").replace(train={"mismatch": {"part_margins": margins}})
    ensemble = train(config, dataset=data)
    picked = [[e[f"val_part{i}"] for e in ensemble.history] for i in range(2)]
    assert max(range(4), key=picked[0].__getitem__) != max(range(4), key=picked[1].__getitem__)
    bank = prepare(config, data).bank
    feats = bank.batch(torch.arange(len(bank.table.images)))
    for i, member in enumerate(MEMBERS):
        alone = train(_alone(tmp_path / f"a{i}", member, margins[i]), dataset=data)
        assert [e["val"] for e in alone.history] == pytest.approx(picked[i], abs=1e-6)
        with torch.no_grad():
            got = ensemble.model.members[i].eval().forward_head(feats)
            want = alone.model.eval().forward_head(feats)
        for dim in want:
            torch.testing.assert_close(got[dim], want[dim], atol=1e-5, rtol=1e-5)


class _MeanOnly(torch.nn.Module):
    """The ensemble seen as one model (its mean scores), for the objective above."""

    def __init__(self, model: Ensemble) -> None:
        super().__init__()
        self.model = model

    def loss_parts(self) -> list:
        return [self]

    def forward_head(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.forward_head(features)


def test_part_margins_reach_each_member_and_must_match_the_parts(tmp_path: Path) -> None:
    """The margin each member's mismatch hinge receives is its own entry of ``part_margins``."""
    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=8, per_prompt=4)
    cfg = _config(tmp_path)
    setup = prepare(cfg, data)
    rows = list(range(len(setup.table.images)))
    seen: list[tuple[int | None, float]] = []
    original = MismatchConfig.margin_of

    def spy(self: MismatchConfig, part: int | None) -> float:
        seen.append((part, original(self, part)))
        return original(self, part)

    split = cfg.replace(train={"mismatch": {"part_margins": [0.25, 2.0]}})
    objective = make_objective(split, setup.model, data, setup.table, rows, [], setup.bank)
    with setup.bank.prefitted(rows), pytest.MonkeyPatch.context() as patch:
        patch.setattr(MismatchConfig, "margin_of", spy)
        objective.batch_loss(setup.model, setup.bank, torch.arange(8), 0, "cpu")
    assert sorted(set(seen)) == [(0, 0.25), (1, 2.0)]
    with pytest.raises(ValueError, match="part_margins has 3 margins for a model trained in 2"):
        make_objective(
            cfg.replace(train={"mismatch": {"part_margins": [0.5, 1.0, 1.5]}}),
            setup.model,
            data,
            setup.table,
            rows,
            [],
            setup.bank,
        )


def test_trained_folder_reloads_with_the_same_scores(tmp_path: Path) -> None:
    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=8, per_prompt=4)
    cfg = _config(tmp_path)
    result = train(cfg, out_dir=tmp_path / "model", dataset=data)
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert "members.1.caption.weight" in saved and "members.0.encoder.copies.0.weight" in saved
    assert not {"encoder.image_projection.weight", "encoder.text_projection.weight"} & set(saved)  # unused
    card = ModelCard.from_yaml(tmp_path / "model" / "config.yaml")
    assert card.method == "ensemble"
    history = result.history  # the figures of the weights kept: each member's best epoch, put together
    for i in range(2):
        best = max(history, key=lambda h: h[f"val_part{i}"])["epoch"]
        assert card.metrics[f"val_epoch_part{i}"] == best
    mean = (card.metrics["val_quality_srcc"] + card.metrics["val_alignment_srcc"]) / 2
    assert mean == pytest.approx(result.best_val, abs=1e-4)
    loaded = create_model(str(tmp_path / "model"))
    assert isinstance(loaded, Ensemble) and isinstance(loaded.members[1], TSPMGS)
    images = tiny_images(3)
    with torch.no_grad():
        pixels = torch.stack([loaded.preprocess(i) for i in images])
        torch.testing.assert_close(loaded(pixels, PROMPTS[:3]), result.model.eval()(pixels, PROMPTS[:3]))


def test_an_interrupted_ensemble_resumes_to_the_uninterrupted_model(tmp_path: Path, monkeypatch) -> None:
    """Each member's best epoch so far travels in the checkpoint (``part_best``): a run stopped after epoch 2 and
    resumed keeps the same epochs as one that never stopped."""
    from agiqa.train import checkpoint as checkpoint_module

    tiny.register_concepts()
    data = tiny.make_dataset(tmp_path / "images", n_prompts=10, per_prompt=4)
    cfg = _config(tmp_path)
    whole = train(cfg, out_dir=tmp_path / "whole", dataset=data)
    real_save, saves = checkpoint_module.Checkpoint.save, []

    def crash_after_second_save(self, *args, **kwargs):  # noqa: ANN001, ANN202
        real_save(self, *args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", crash_after_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out_dir=tmp_path / "broken", dataset=data)
    monkeypatch.setattr(checkpoint_module.Checkpoint, "save", real_save)
    resumed = train(cfg, out_dir=tmp_path / "broken", resume=True, dataset=data)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key)
    assert resumed.best_val == pytest.approx(whole.best_val)


class _NoProjections(TinyDualEncoder):
    """An encoder whose projections are part of its towers (as CLIP's): nothing for a member to copy."""

    def projection_modules(self) -> list[torch.nn.Module]:
        return []


def test_members_share_an_encoder_without_projections_whole() -> None:
    from _conformance import check_contract

    plain = {"n_patches": 1, "fine_grained": {"quality": False}, "adapter": True}
    members = [
        {"method": "tsp-mgs", "method_args": plain},
        {"method": "tsp-mgs", "method_args": {**plain, "alpha": 0.5}},
    ]
    model = Ensemble(_NoProjections(seed=6), DIMS, members).eval()
    assert all(not m.encoder.projection_modules() for m in model.members)
    check_contract(model)


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("lite/default", "tsp-mgs-cap-mix-cca"),
        ("lite/tsp-mgs-ens-cca", "tsp-mgs-cap-mix-cca"),
        ("lite/tsp-mgs-ens-swap", "tsp-mgs-cap-mix"),
        ("lite/tsp-mgs-ens", "tsp-mgs-cap-mix"),
        ("lite/tsp-mgs-ens-q", "tsp-mgs-cap-mix"),
    ],
)
def test_shipped_ensembles_are_their_recipes(name: str, second: str) -> None:
    """The shipped ensembles say they are the recipes of lite/tsp-mgs-ml-cmq-h0 and their second member's
    (``second``) trained alone: same encoder, same method arguments, same training settings, each with its own
    mismatch margin; only the rule that picks each member's epoch (``keep_best_by``) may be the ensemble's own."""
    from agiqa.configs import find_config
    from agiqa.train.setup import model_card

    config = TrainConfig.from_yaml(find_config(name))
    card = model_card(config)
    recipes = [TrainConfig.from_yaml(find_config(f"lite/{r}")) for r in ("tsp-mgs-ml-cmq-h0", second)]
    members = card.method_args["members"]
    assert config.train.mismatch.part_margins == [r.train.mismatch.margin for r in recipes]
    for member, recipe in zip(members, recipes, strict=True):
        alone = model_card(recipe)
        assert (member["method"], member["method_args"]) == (alone.method, alone.method_args)
        assert (card.encoder, card.encoder_args, card.dimensions) == (
            alone.encoder,
            alone.encoder_args,
            alone.dimensions,
        )
        own = dataclasses.replace(config.train, mismatch=recipe.train.mismatch, keep_best_by=recipe.train.keep_best_by)
        assert own == recipe.train and config.data == recipe.data
